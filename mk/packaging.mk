# packaging.mk: `make deb` and `make rpm` build the Debian and RPM packages into packaging/out/.
#
# Both build from a copy of the source tree in a temporary directory (never in
# ./build or the work tree): the tracked files plus new files not ignored by git,
# or the whole tree less build output when this is not a git checkout.
# Tools: deb needs dpkg-dev and debhelper, rpm needs rpm (rpmbuild); on Debian
# they come with `BUSGATE_EXTRA_PKGS="debhelper lintian rpm" make deps`.

PKG_OUT     ?= packaging/out
PKG_TMPDIR  ?= $(or $(TMPDIR),/tmp)
PKG_JOBS    ?= 2
PKG_VERSION := $(shell sed -n '1s/^busgate (\([^)-]*\).*/\1/p' packaging/debian/changelog)
RPM_VERSION := $(shell sed -n 's/^Version:[[:space:]]*//p' packaging/rpm/busgate.spec)
PKG_NAME    := busgate-$(PKG_VERSION)

# Copies the source tree into $(1) (a shell expression). etc, docs and
# packaging hold no build output and are copied whole, so that a new file there
# counts before git knows it (and whatever a *.d ignore rule says).
define pkg_copy_tree
	mkdir -p $(1); \
	if git rev-parse --is-inside-work-tree >/dev/null 2>&1; then \
	    git ls-files -z --cached --others --exclude-standard \
	        | tar --null --no-recursion --ignore-failed-read -T - -cf - \
	        | tar -xf - -C $(1); \
	    tar --exclude=$(PKG_OUT) -cf - etc docs packaging | tar -xf - -C $(1); \
	else \
	    tar --exclude=./.git --exclude=./build --exclude=./build-san \
	        --exclude=./$(PKG_OUT) --exclude=./debian -cf - . | tar -xf - -C $(1); \
	fi
endef

# Fails with a hint when a packaging tool is missing.
define pkg_need
	@command -v $(1) >/dev/null 2>&1 || { \
	    echo "make $@: $(1) not found; install $(2) (e.g. BUSGATE_EXTRA_PKGS=\"$(2)\" make deps)" >&2; \
	    exit 1; }
endef

.PHONY: deb rpm

deb:
	$(call pkg_need,dpkg-buildpackage,dpkg-dev)
	$(call pkg_need,dh,debhelper)
	@test -n "$(PKG_VERSION)" || { echo "make deb: no version in packaging/debian/changelog" >&2; exit 1; }
	set -e; tmp=$$(mktemp -d "$(PKG_TMPDIR)/busgate-deb.XXXXXX"); \
	trap 'rm -rf "$$tmp"' EXIT; trap 'exit 1' INT TERM HUP; \
	src="$$tmp/$(PKG_NAME)"; \
	$(call pkg_copy_tree,"$$src"); \
	rm -rf "$$src/debian"; cp -R packaging/debian "$$src/debian"; \
	(cd "$$src" && dpkg-buildpackage -us -uc -b -j$(PKG_JOBS)); \
	mkdir -p $(PKG_OUT); \
	for f in "$$tmp"/*.deb "$$tmp"/*.ddeb "$$tmp"/*.changes "$$tmp"/*.buildinfo; do \
	    if [ -e "$$f" ]; then cp "$$f" $(PKG_OUT)/; fi; \
	done; \
	echo "make deb: packages in $(PKG_OUT):"; ls -1 $(PKG_OUT)/*.deb

# On a distribution without an RPM database (Debian), rpmbuild cannot check the
# spec's BuildRequires, which name RPM packages: it builds with --nodeps there.
RPMBUILD_FLAGS ?= $(shell rpm -q rpm >/dev/null 2>&1 || echo --nodeps)

rpm:
	$(call pkg_need,rpmbuild,rpm)
	@test "$(PKG_VERSION)" = "$(RPM_VERSION)" || { \
	    echo "make rpm: version $(RPM_VERSION) in busgate.spec differs from $(PKG_VERSION) in debian/changelog" >&2; \
	    exit 1; }
	set -e; tmp=$$(mktemp -d "$(PKG_TMPDIR)/busgate-rpm.XXXXXX"); \
	trap 'rm -rf "$$tmp"' EXIT; trap 'exit 1' INT TERM HUP; \
	top="$$tmp/rpmbuild"; mkdir -p "$$top/SOURCES" "$$top/SPECS"; \
	$(call pkg_copy_tree,"$$tmp/$(PKG_NAME)"); \
	tar -C "$$tmp" -czf "$$top/SOURCES/$(PKG_NAME).tar.gz" "$(PKG_NAME)"; \
	cp packaging/rpm/busgate.spec "$$top/SPECS/"; \
	rpmbuild -bb $(RPMBUILD_FLAGS) --define "_topdir $$top" \
	    --define "_smp_mflags -j$(PKG_JOBS)" "$$top/SPECS/busgate.spec"; \
	mkdir -p $(PKG_OUT); \
	cp "$$top/SOURCES/$(PKG_NAME).tar.gz" $(PKG_OUT)/; \
	find "$$top/RPMS" -name '*.rpm' -exec cp {} $(PKG_OUT)/ \; ; \
	echo "make rpm: packages in $(PKG_OUT):"; ls -1 $(PKG_OUT)/*.rpm
