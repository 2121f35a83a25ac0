# make install PREFIX=/usr/local [DESTDIR=...]: headers, libraries, the guest
# SDK (library + linker script + mote-cc), the mote tool and a pkg-config file.

LIBDIR   ?= $(PREFIX)/lib
INCDIR   ?= $(PREFIX)/include
BINDIR   ?= $(PREFIX)/bin
SHAREDIR ?= $(PREFIX)/share/mote

$(BUILD)/mote.pc: Makefile mk/40-install.mk
	@mkdir -p $(@D)
	printf 'prefix=%s\nlibdir=%s\nincludedir=%s\n\nName: mote\nDescription: micro-VM sandboxes on KVM\nVersion: %s\nLibs: -L$${libdir} -lmote\nLibs.private: -lcrypto -lpthread -lm\nCflags: -I$${includedir}\n' \
		'$(PREFIX)' '$(LIBDIR)' '$(INCDIR)' '$(VERSION)' > $@

$(BUILD)/mote-cc.installed: tools/mote-cc.in Makefile
	@mkdir -p $(@D)
	sed -e 's|@INCLUDE@|$(INCDIR)|' -e 's|@LIB@|$(LIBDIR)|' \
	    -e 's|@LDSCRIPT@|$(SHAREDIR)/guest.ld|' -e 's|@CC@|$(GUEST_CC)|' $< > $@

ALL_TARGETS += $(BUILD)/mote.pc

install: all $(BUILD)/mote-cc.installed
	install -d $(DESTDIR)$(INCDIR)/mote $(DESTDIR)$(LIBDIR)/pkgconfig $(DESTDIR)$(BINDIR) \
		$(DESTDIR)$(SHAREDIR)
	install -m 644 include/mote.h $(DESTDIR)$(INCDIR)/
	install -m 644 include/mote/types.h include/mote/guest.h $(DESTDIR)$(INCDIR)/mote/
	install -m 644 $(LIBMOTE_A) $(LIBGUEST) $(DESTDIR)$(LIBDIR)/
	install -m 755 $(LIBMOTE_SO) $(DESTDIR)$(LIBDIR)/libmote.so.0
	ln -sf libmote.so.0 $(DESTDIR)$(LIBDIR)/libmote.so
	install -m 644 $(BUILD)/mote.pc $(DESTDIR)$(LIBDIR)/pkgconfig/
	install -m 644 src/guest/guest.ld $(DESTDIR)$(SHAREDIR)/
	install -m 755 $(MOTE_BIN) $(DESTDIR)$(BINDIR)/mote
	install -m 755 $(BUILD)/mote-cc.installed $(DESTDIR)$(BINDIR)/mote-cc

.PHONY: install
