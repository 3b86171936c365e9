#!/usr/bin/env bash
# `cmake --install` of the build tree into a temporary prefix, then the
# embedding example (examples/embed/) built against the INSTALLED library
# through pkg-config, shared and static, and run: it creates an image
# file, writes a file through vd_fs, reopens it and reads it back.
source "$(dirname "$0")/lib.sh"
need cmake pkg-config make cc nm ldd

for f in libvdisk.so libvdisk.a; do
    [[ -e "$VD_BUILD/libvdisk/$f" ]] || skip "$VD_BUILD/libvdisk/$f not built"
done
# Instrumented (clang fuzz) trees have no install rules and no .pc file.
[[ -f "$VD_BUILD/libvdisk/vdisk.pc" ]] || skip "$VD_BUILD installs no library (a fuzz build?)"

# The version the project declares, read from the top-level CMakeLists.
version=$(sed -nE 's/^project\(vdisk VERSION ([0-9]+\.[0-9]+\.[0-9]+).*/\1/p' "$VD_SRC/CMakeLists.txt")
[[ "$version" =~ ^[0-9]+\.[0-9]+\.[0-9]+$ ]] || fail "cannot read the project version"
major=${version%%.*}

P=$T/prefix
expect_status 0 cmake --install "$VD_BUILD" --prefix "$P"

export PKG_CONFIG_PATH=$P/lib/pkgconfig
[[ -f "$P/lib/pkgconfig/vdisk.pc" ]] || fail "no lib/pkgconfig/vdisk.pc under the prefix"
expect_status 0 pkg-config --modversion vdisk
[[ "$(cat "$T/out")" == "$version" ]] || fail "pkg-config version '$(cat "$T/out")', project $version"
# The .pc file locates its prefix from its own path: compare resolved.
libdir=$(realpath "$(pkg-config --variable=libdir vdisk)")
incdir=$(realpath "$(pkg-config --variable=includedir vdisk)")
[[ "$libdir" == "$(realpath "$P/lib")" ]] || fail "libdir $libdir is not $P/lib"
[[ "$incdir" == "$(realpath "$P/include")" ]] || fail "includedir $incdir is not $P/include"

# Library files, soname chain, headers.
[[ -f "$libdir/libvdisk.so.$version" ]] || fail "libvdisk.so.$version not installed"
[[ "$(readlink "$libdir/libvdisk.so.$major")" == "libvdisk.so.$version" ]] ||
    fail "libvdisk.so.$major does not point at libvdisk.so.$version"
[[ "$(readlink "$libdir/libvdisk.so")" == "libvdisk.so.$major" ]] ||
    fail "libvdisk.so does not point at libvdisk.so.$major"
[[ -f "$libdir/libvdisk.a" ]] || fail "libvdisk.a not installed"
for h in vdisk.h fs.h host.h keys.h anchor.h; do
    [[ -f "$incdir/vdisk/$h" ]] || fail "header vdisk/$h not installed"
done

# Dependencies are declared for static linking (Requires.private,
# Libs.private) and kept out of a shared link.
expect_status 0 pkg-config --static --libs vdisk
for l in -lvdisk -lxxhash -lpthread -lsodium -lcrypto; do
    grep -qw -- "$l" "$T/out" || fail "pkg-config --static --libs lacks $l: $(cat "$T/out")"
done
expect_status 0 pkg-config --libs vdisk
grep -qw -- -lsodium "$T/out" && fail "pkg-config --libs leaks private -lsodium: $(cat "$T/out")"

# The archive is self-contained: core and backends.
nm "$libdir/libvdisk.a" >"$T/nm"
for s in vd_image_open vd_fs_mount vd_host_file_open vd_host_mem_new vd_version; do
    grep -q " T $s\$" "$T/nm" || fail "libvdisk.a does not define $s"
done

# ---- the example, built against the prefix ------------------------------
cp -r "$VD_SRC/examples/embed" "$T/embed"
# Shared, with the plain command line an application would use.
expect_status 0 cc -std=c11 -Wall -Wextra -Werror -o "$T/embed/embed" "$T/embed/embed.c" \
    $(pkg-config --cflags --libs vdisk)
LD_LIBRARY_PATH=$libdir ldd "$T/embed/embed" >"$T/ldd"
grep -Eq "libvdisk\.so\.$major => $libdir/libvdisk\.so\.$major" "$T/ldd" ||
    { cat "$T/ldd" >&2; fail "embed does not load the installed libvdisk.so.$major"; }
expect_status 0 env LD_LIBRARY_PATH="$libdir" "$T/embed/embed" "$T/a.vhd"
expect_out "^libvdisk $version \(built against headers $version\)$"
expect_out '^read back /docs/hello\.txt: 29 bytes$'
expect_out '^embed: ok$'
[[ "$(tail -c 512 "$T/a.vhd" | head -c 8)" == conectix ]] || fail "a.vhd does not end in a VHD footer"
# Without the library on the search path the program must not start:
# proof that it really was linked dynamically against the prefix.
expect_status 127 "$T/embed/embed" "$T/b.vhd"

# Static, through the example's Makefile.
expect_status 0 make -C "$T/embed" static
ldd "$T/embed/embed-static" >"$T/ldd" 2>&1 || true
grep -q libvdisk "$T/ldd" && fail "embed-static still needs libvdisk.so"
expect_status 0 "$T/embed/embed-static" "$T/c.vhd"
expect_out '^embed: ok$'
# The image exists already: the example refuses to overwrite it.
expect_status 1 "$T/embed/embed-static" "$T/c.vhd"
expect_err '^embed: .*c\.vhd: '
# The nbdkit plugin, when built: in nbdkit's plugin directory taken
# relative to nbdkit's prefix, so under P here; loadable, exporting only
# plugin_init.
if [[ -f "$VD_BUILD/nbdkit/nbdkit-vdisk-plugin.so" ]]; then
    nbdprefix=$(pkg-config --variable=prefix nbdkit)
    plugindir=$(pkg-config --variable=plugindir nbdkit)
    [[ "$plugindir" == "$nbdprefix"/* ]] || fail "nbdkit's plugindir $plugindir is outside $nbdprefix"
    plugin=$P/${plugindir#"$nbdprefix"/}/nbdkit-vdisk-plugin.so
    [[ -f "$plugin" ]] || fail "nbdkit-vdisk-plugin.so not installed at $plugin"
    nm -D --defined-only "$plugin" | awk '{print $3}' >"$T/nm"
    [[ "$(cat "$T/nm")" == plugin_init ]] || fail "the plugin exports more than plugin_init: $(cat "$T/nm")"
    if command -v nbdkit >/dev/null; then
        expect_status 0 nbdkit "$plugin" --dump-plugin
        expect_out '^name=vdisk$'
    fi
    note "nbdkit-vdisk-plugin.so installed under the prefix"
else
    note "nbdkit-vdisk-plugin.so not built: not checked"
fi
note "installed $version into a prefix; embed built and ran (shared and static)"
