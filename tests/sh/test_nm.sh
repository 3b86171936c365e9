#!/usr/bin/env bash
# The library's boundaries, read from its symbol tables (issue 9,
# "Embedding"; DESIGN §8):
#  1. the core archive (libvdisk_core.a: everything but the host backends)
#     reaches the outside world only through the vd_host callbacks: none of
#     its external undefined symbols is a file, socket, memory-mapping,
#     process or stdio call, and every one of them is on a short allowlist
#     (libc memory/string functions, the allocator, pthread mutexes,
#     libsodium, OpenSSL's EVP, xxhash), so a new system call fails here
#     even if the denylist forgot it;
#  2. the core needs no libfuse: no fuse_* symbol, no FUSE header, and the
#     library's CMakeLists never names FUSE (VD_TEST_SLOW=1 also configures
#     and builds the core in a tree where pkg-config cannot see fuse3);
#  3. libvdisk.so exports exactly the functions the public headers declare
#     (include/vdisk/*.h), all with the vd_ prefix, and nothing else.
source "$(dirname "$0")/lib.sh"
need nm

LIBDIR=$VD_BUILD/libvdisk
CORE=$LIBDIR/libvdisk_core.a
SO=$LIBDIR/libvdisk.so
[[ -f "$CORE" ]] || skip "$CORE not built (make vdisk)"

# ---- 1. core: external undefined symbols ---------------------------------
nm -u "$CORE" | awk 'NF == 2 { print $2 }' | sed 's/@.*//' | sort -u >"$T/undef"
nm --defined-only "$CORE" | awk 'NF == 3 { print $3 }' | sort -u >"$T/def"
comm -23 "$T/undef" "$T/def" >"$T/external"
[[ -s "$T/external" ]] || fail "nm found no external symbols in $CORE (nm broken?)"
grep -qx 'memcpy' "$T/external" || fail "core does not use memcpy? nm output looks wrong"

# Calls that would let the core touch files, sockets, memory maps, other
# processes or the terminal without going through vd_host.
deny='open|open64|openat|openat64|openat2|creat|creat64|__open_2|__open64_2|__openat_2'
deny+='|read|readv|pread|pread64|preadv|preadv2|__read_chk|__pread_chk|__pread64_chk'
deny+='|write|writev|pwrite|pwrite64|pwritev|pwritev2|close|close_range|lseek|lseek64'
deny+='|fsync|fdatasync|sync|syncfs|sync_file_range|fallocate|posix_fallocate'
deny+='|socket|socketpair|connect|accept|accept4|bind|listen|shutdown'
deny+='|send|sendto|sendmsg|sendmmsg|recv|recvfrom|recvmsg|recvmmsg|__recv_chk'
deny+='|mmap|mmap64|munmap|mremap|mprotect|msync|madvise|mlock|munlock|shm_open'
deny+='|stat|stat64|fstat|fstat64|lstat|lstat64|fstatat|fstatat64|newfstatat|statx'
deny+='|__xstat|__fxstat|__lxstat|statfs|fstatfs|access|faccessat'
deny+='|ftruncate|ftruncate64|truncate|truncate64|unlink|unlinkat|rename|renameat'
deny+='|renameat2|link|linkat|symlink|mkdir|mkdirat|rmdir|mknod|chmod|fchmod|chown'
deny+='|flock|fcntl|fcntl64|ioctl|dup|dup2|dup3|pipe|pipe2|select|poll|ppoll'
deny+='|epoll_create|epoll_create1|epoll_ctl|epoll_wait|opendir|fdopendir|readdir'
deny+='|readdir64|closedir|mkstemp|mkostemp|tmpfile'
deny+='|fopen|fopen64|fdopen|freopen|fclose|fread|fwrite|fgets|fputs|fputc|fflush'
deny+='|fseek|fseeko|ftell|ftello|fileno|printf|fprintf|vfprintf|dprintf|puts|perror'
deny+='|__printf_chk|__fprintf_chk|__vfprintf_chk|stdin|stdout|stderr'
deny+='|syscall|getrandom|getentropy|clock_gettime|gettimeofday|time'
deny+='|fork|vfork|execve|execvp|system|popen|kill|raise|signal|sigaction|exit|_exit'
deny+='|dlopen|dlsym|getenv|secure_getenv'
if grep -Ex "$deny" "$T/external" >"$T/bad"; then
    fail "core archive calls the outside world directly: $(tr '\n' ' ' <"$T/bad")"
fi

allow='(mem|str)[a-z_]*|malloc|calloc|realloc|free|aligned_alloc|posix_memalign'
allow+='|qsort|bsearch|abort|__assert_fail|__stack_chk_fail|__errno_location'
# Formatting into memory and character classes (no I/O).
allow+='|snprintf|vsnprintf|__snprintf_chk|__vsnprintf_chk|strto[a-z]+|__ctype_[a-z_]+'
allow+='|pthread_mutex_[a-z_]+|pthread_rwlock_[a-z_]+|pthread_rwlockattr_[a-z_]+|pthread_once'
allow+='|crypto_[a-z0-9_]+|randombytes_[a-z_]+|sodium_[a-z_]+'
allow+='|EVP_[A-Za-z0-9_]+|OPENSSL_[a-z_]+|ERR_[a-z_]+|XXH[A-Za-z0-9_]*'
# Sanitizer and coverage builds (VD_SANITIZE, VD_TSAN) add their runtimes.
allow+='|__(asan|ubsan|tsan|msan|sanitizer|sancov)_[A-Za-z0-9_]+'
if grep -Evx "$allow" "$T/external" >"$T/unknown"; then
    fail "core archive uses symbols outside the allowlist (a new dependency or" \
         "system call? extend tests/sh/test_nm.sh only if it is neither): $(tr '\n' ' ' <"$T/unknown")"
fi
note "core: $(wc -l <"$T/external") external symbols, all allowed"

# ---- 2. core without libfuse ---------------------------------------------
if grep -Eq '^fuse_' "$T/external"; then fail "core archive references libfuse"; fi
if grep -rEl '#[[:space:]]*include[[:space:]]*[<"]fuse' "$VD_SRC/libvdisk" "$VD_SRC/merkle" >"$T/fusesrc"; then
    fail "core sources include FUSE headers: $(tr '\n' ' ' <"$T/fusesrc")"
fi
if grep -qi 'fuse' "$VD_SRC/libvdisk/CMakeLists.txt"; then
    fail "libvdisk/CMakeLists.txt mentions FUSE"
fi
if [[ "${VD_TEST_SLOW:-0}" == 1 ]]; then
    # A pkg-config search path that holds only the library's real
    # dependencies, so fuse3 is not found and the fuse parts are skipped.
    mkdir -p "$T/pc"
    for m in libsodium libcrypto; do
        pc=$(pkg-config --variable=pcfiledir "$m")/$m.pc
        ln -s "$pc" "$T/pc/$m.pc"
    done
    expect_status 0 env PKG_CONFIG_LIBDIR="$T/pc" PKG_CONFIG_PATH= cmake -S "$VD_SRC" \
        -B "$T/nofuse" -DVD_BUILD_TESTS=OFF -DCMAKE_BUILD_TYPE=Release
    grep -q 'FUSE3_FOUND:INTERNAL=' "$T/nofuse/CMakeCache.txt" &&
        ! grep -q 'FUSE3_FOUND:INTERNAL=1' "$T/nofuse/CMakeCache.txt" ||
        fail "fuse3 was still found in the no-fuse configuration"
    expect_status 0 make -C "$T/nofuse" -j2 vdisk vdisk_host
    note "core and backends built with fuse3 invisible"
fi

# ---- 3. shared library exports -------------------------------------------
[[ -f "$SO" ]] || skip "$SO not built (make vdisk_shared)"
# Declarations in the public headers: a line that starts with the return
# type and ends the function name with "(".
grep -hE '^[a-z][a-z0-9_ ]*[ *]+vd_[a-z0-9_]+\(' "$VD_SRC"/libvdisk/include/vdisk/*.h |
    sed -E 's/^[a-z][a-z0-9_ ]*[ *]+(vd_[a-z0-9_]+)\(.*/\1/' | sort -u >"$T/declared"
grep -qx vd_version "$T/declared" || fail "header parse found no vd_version"
(( $(wc -l <"$T/declared") >= 40 )) || fail "header parse found only $(wc -l <"$T/declared") functions"
nm -D --defined-only "$SO" | awk 'NF == 3 && $2 != "A" { print $3 }' | sed 's/@.*//' |
    sort -u >"$T/exported"
if grep -v '^vd_' "$T/exported" >"$T/bad"; then
    fail "libvdisk.so exports non-vd_ symbols: $(tr '\n' ' ' <"$T/bad")"
fi
if comm -23 "$T/exported" "$T/declared" >"$T/bad" && [[ -s "$T/bad" ]]; then
    fail "libvdisk.so exports internal functions: $(tr '\n' ' ' <"$T/bad")"
fi
if comm -13 "$T/exported" "$T/declared" >"$T/bad" && [[ -s "$T/bad" ]]; then
    fail "public functions missing from libvdisk.so: $(tr '\n' ' ' <"$T/bad")"
fi
# The internal helpers exist in the objects, so their absence above is the
# version script's doing, not an empty library.
nm "$CORE" >"$T/coresyms"
grep -q ' T vd_header_decode$' "$T/coresyms" || fail "vd_header_decode not in the core (renamed?)"
soname=$(objdump -p "$SO" | awk '$1 == "SONAME" { print $2 }')
[[ "$soname" == libvdisk.so.[0-9]* ]] || fail "unexpected SONAME '$soname'"
note "libvdisk.so ($soname): $(wc -l <"$T/exported") exported functions, all public"
