# The mote command line tool: the subcommands (tools/mote.c), what they
# share (tools/cli.c) and the Wasm subcommand (tools/mote_wasm.c).
CLI_SRCS := tools/mote.c tools/cli.c tools/mote_wasm.c

$(MOTE_BIN): $(CLI_SRCS) tools/cli.h $(LIBMOTE_A) $(BENCH_OBJS)
	@mkdir -p $(@D)
	$(CC) $(HOST_CFLAGS) -I. -o $@ $(CLI_SRCS) $(BENCH_OBJS) $(LIBMOTE_A) $(HOST_LDFLAGS) $(HOST_LIBS)
