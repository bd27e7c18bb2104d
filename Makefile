# The front door: familiar targets over the Python builder (mvirt-build). Every target first
# runs scripts/bootstrap.sh, which installs what is missing and returns at once otherwise.

BUILD := .venv/bin/mvirt-build
BOOTSTRAP := scripts/bootstrap.sh
BOOT_ARGS ?=
# `make boot ISO=1 SECUREBOOT=1`: boot the ISO (as a CD) with Secure Boot enforcing.
ISO ?=
SECUREBOOT ?=
# Settings live in mvirt-build.conf (read by mvirt-build whether run by make or by hand), not here.

.PHONY: all uos iso kernel rootfs initramfs boot status check test lint lock wheels menuconfig clean distclean bootstrap release docker

all: uos

bootstrap:
	@$(BOOTSTRAP)

uos: bootstrap
	@$(BUILD) uki

iso: bootstrap
	@$(BUILD) iso

kernel rootfs initramfs: bootstrap
	@$(BUILD) $@

boot: bootstrap
	@$(BUILD) boot $(if $(filter 1 yes,$(ISO)),--iso) \
		$(if $(filter 1 yes,$(SECUREBOOT)),--secure-boot) $(BOOT_ARGS)

# Host packages: wheel, sdist and .deb packages in dist/ (docs/install.md).
release: bootstrap
	@$(BUILD) release

# The whole build (make iso) inside a Debian 12 container, as the calling user.
docker:
	@scripts/docker-build.sh iso

status: bootstrap
	@$(BUILD) status

check: bootstrap
	@$(BUILD) check

menuconfig: bootstrap
	@$(BUILD) menuconfig

test: bootstrap
	@scripts/test.sh

# Re-resolve the runtime dependencies of pyproject.toml into requirements/runtime.lock (exact
# versions, SHA-256 of every file). Run it after adding or changing a dependency; the rootfs
# (the image's Python packages) and scripts/bootstrap.sh (the virtualenv) both install it.
# The locked wheels in .cache/wheels: what a plain `mkosi build` installs (it has no network);
# and mkosi's repository list, written from this machine's apt sources (mkosi.pkgmngr/).
wheels: bootstrap
	@.venv/bin/python -m mvirt_build.mkosi_sources
	@.venv/bin/python -m mvirt_build.pylock

lock: bootstrap
	@CUSTOM_COMPILE_COMMAND="make lock" .venv/bin/pip-compile --quiet --generate-hashes \
		--no-emit-index-url --no-emit-trusted-host --no-emit-find-links --strip-extras \
		--allow-unsafe --output-file requirements/runtime.lock pyproject.toml

lint: bootstrap
	@.venv/bin/ruff check . && .venv/bin/ruff format --check . && .venv/bin/mypy && .venv/bin/hadolint Dockerfile

clean:
	@if [ -x $(BUILD) ]; then $(BUILD) clean; else rm -rf build; fi

distclean:
	@if [ -x $(BUILD) ]; then $(BUILD) distclean; else rm -rf build; fi
