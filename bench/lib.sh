# shellcheck shell=bash
# bench/lib.sh: what the benchmark scripts share. Sourced, not run.
#
# Builds pinned releases of restic and kopia from the Go module proxy and
# caches the binaries per version. The caller sets
#   W          a scratch directory with a logs/ subdirectory (build logs go there)
#   BIN_CACHE  where built binaries are kept between runs
# and defines log MESSAGE (progress to stderr).

# ---------------------------------------------------------------- pinned tools
# Latest 0.19.x / 0.23.x served by the module proxy when this was written.
# (The proxy here refuses `go list -m -versions` for both modules, so the
# versions were found by asking for single versions: v0.19.2 and v0.23.2 are
# "not available".) Bump deliberately and re-run; binaries are cached per
# version.
RESTIC_VERSION=v0.19.1
KOPIA_VERSION=v0.23.1
RESTIC_PKG=github.com/restic/restic/cmd/restic
KOPIA_MOD=github.com/kopia/kopia

# build_in_tmp_module OUT PKG MODULE@VERSION: builds PKG as a requirement of a
# throwaway module (works where `go install pkg@version` is refused).
build_in_tmp_module() {
	local out=$1 pkg=$2 modver=$3 d
	d=$(mktemp -d "$W/build.XXXXXX")
	(
		cd "$d" &&
			go mod init benchtmp &&
			go get "$modver" &&
			CGO_ENABLED=0 go build -trimpath -o "$out" "$pkg"
	) >"$W/logs/build-$(basename "$out").log" 2>&1
	local rc=$?
	rm -rf -- "$d"
	return $rc
}

# install_restic: prints the path of the cached restic binary, building it first
# when it is not there.
install_restic() {
	local out=$BIN_CACHE/restic-$RESTIC_VERSION
	if [[ -x $out ]]; then echo "$out"; return 0; fi
	mkdir -p "$BIN_CACHE"
	log "building restic $RESTIC_VERSION (once; cached in $BIN_CACHE)"
	local start=$SECONDS gb
	gb=$(mktemp -d "$W/gobin.XXXXXX")
	if GOBIN=$gb CGO_ENABLED=0 go install -trimpath "$RESTIC_PKG@$RESTIC_VERSION" >"$W/logs/build-restic-install.log" 2>&1; then
		mv "$gb/restic" "$out.tmp" && mv "$out.tmp" "$out"
	else
		log "go install $RESTIC_PKG@$RESTIC_VERSION failed ($(tail -n 1 "$W/logs/build-restic-install.log")); building in a throwaway module instead"
		if ! build_in_tmp_module "$out.tmp" "$RESTIC_PKG" "$RESTIC_PKG@$RESTIC_VERSION"; then
			tail -n 30 "$W/logs/build-restic-$RESTIC_VERSION.tmp.log" >&2 || true
			return 1
		fi
		mv "$out.tmp" "$out"
	fi
	rm -rf -- "$gb"
	log "built restic in $((SECONDS - start))s"
	echo "$out"
}

# install_kopia: likewise for kopia.
install_kopia() {
	local out=$BIN_CACHE/kopia-$KOPIA_VERSION
	if [[ -x $out ]]; then echo "$out"; return 0; fi
	mkdir -p "$BIN_CACHE"
	log "building kopia $KOPIA_VERSION (once; cached in $BIN_CACHE)"
	local start=$SECONDS
	if ! build_in_tmp_module "$out.tmp" "$KOPIA_MOD" "$KOPIA_MOD@$KOPIA_VERSION"; then
		tail -n 30 "$W/logs/build-kopia-$KOPIA_VERSION.tmp.log" >&2 || true
		return 1
	fi
	mv "$out.tmp" "$out"
	log "built kopia in $((SECONDS - start))s"
	echo "$out"
}
