# scripts/module.mk - the operating tools, their man pages, `make install`,
# `make uninstall` and `make deb`.
#
# The tools are copied into $(BUILD)/ so that, as once installed, each finds
# liburingshim.so and uringshim-stat right next to itself.

VERSION_NUMBER	:= $(shell cat VERSION)
PREFIX		?= /usr/local
DESTDIR		?=

OPS_SCRIPTS	:= uringshim-run uringshim-canary uringshim-cohort \
		   uringshim-rollback uringshim-collect
OPS_TOOLS	:= $(addprefix $(BUILD)/,$(OPS_SCRIPTS))
PROGRAMS	+= $(OPS_TOOLS)

MAN_PAGES	:= $(wildcard man/*.[1-8])
MAN_GZ		:= $(patsubst man/%,$(BUILD)/man/%.gz,$(MAN_PAGES))

# What `make install` ships: the library, its stats tool and the scripts.
INSTALL_LIB	:= $(BUILD)/liburingshim.so
INSTALL_BIN	:= $(OPS_TOOLS) $(BUILD)/uringshim-stat
DOC_FILES	:= packaging/systemd/uringshim.conf.example \
		   packaging/rollout.conf.example

LIBDIR_SHIM	= $(DESTDIR)$(PREFIX)/lib/uringshim
BINDIR		= $(DESTDIR)$(PREFIX)/bin
MANDIR		= $(DESTDIR)$(PREFIX)/share/man
DOCDIR		= $(DESTDIR)$(PREFIX)/share/doc/uringshim

$(OPS_TOOLS): $(BUILD)/%: scripts/% VERSION
	$(quiet) GEN $@
	$(Q)mkdir -p $(@D)
	$(Q)sed 's/@VERSION@/$(VERSION_NUMBER)/' $< > $@.tmp
	$(Q)chmod 0755 $@.tmp && mv $@.tmp $@

# -n: no timestamp in the gzip header, so the package is reproducible.
$(BUILD)/man/%.gz: man/% VERSION
	$(quiet) GZIP $@
	$(Q)mkdir -p $(@D)
	$(Q)sed 's/@VERSION@/$(VERSION_NUMBER)/' $< | gzip -9n > $@

.PHONY: man install uninstall deb deps-pkg
man: $(MAN_GZ)

deps-pkg:
	$(Q)scripts/deps.sh pkg

install: $(INSTALL_LIB) $(INSTALL_BIN) $(MAN_GZ)
	$(quiet) INSTALL $(DESTDIR)$(PREFIX)
	$(Q)install -d $(LIBDIR_SHIM) $(BINDIR) $(DOCDIR)/examples
	$(Q)install -m 0644 $(INSTALL_LIB) $(LIBDIR_SHIM)/liburingshim.so
	$(Q)install -m 0755 $(INSTALL_BIN) $(BINDIR)/
	$(Q)for page in $(MAN_GZ); do \
		sect=$$(basename $$page .gz); sect=$${sect##*.}; \
		install -d $(MANDIR)/man$$sect && \
		install -m 0644 $$page $(MANDIR)/man$$sect/ || exit 1; \
	done
	$(Q)install -m 0644 $(DOC_FILES) $(DOCDIR)/examples/

uninstall:
	$(quiet) UNINST $(DESTDIR)$(PREFIX)
	$(Q)rm -f $(LIBDIR_SHIM)/liburingshim.so
	$(Q)rm -f $(addprefix $(BINDIR)/,$(notdir $(INSTALL_BIN)))
	$(Q)for page in $(notdir $(MAN_GZ)); do \
		sect=$${page%.gz}; sect=$${sect##*.}; \
		rm -f $(MANDIR)/man$$sect/$$page; \
	done
	$(Q)rm -f $(addprefix $(DOCDIR)/examples/,$(notdir $(DOC_FILES)))
	$(Q)rmdir $(LIBDIR_SHIM) $(DOCDIR)/examples $(DOCDIR) 2>/dev/null \
		|| true

# The package: a staged `make install` into /usr, then scripts/mkdeb.
DEB_ROOT	:= $(BUILD)/deb/root
deb: $(INSTALL_LIB) $(INSTALL_BIN) $(MAN_GZ)
	$(Q)rm -rf $(DEB_ROOT)
	$(Q)$(MAKE) --no-print-directory install PREFIX=/usr \
		DESTDIR=$(abspath $(DEB_ROOT))
	$(Q)scripts/mkdeb $(DEB_ROOT) $(VERSION_NUMBER) $(BUILD)

# A rehearsal of the whole rollout on four namespace hosts (root, ~30 s):
# make ops-demo OPS_DEMO_FLAGS="--duration 10 --percent 50"
.PHONY: ops-demo
ops-demo: all
	$(Q)scripts/ops-demo --build $(BUILD) $(OPS_DEMO_FLAGS)
