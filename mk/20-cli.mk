# The mote command line tool.

$(MOTE_BIN): tools/mote.c $(LIBMOTE_A) $(BENCH_OBJS)
	@mkdir -p $(@D)
	$(CC) $(HOST_CFLAGS) -I. -o $@ $< $(BENCH_OBJS) $(LIBMOTE_A) $(HOST_LDFLAGS) $(HOST_LIBS)
