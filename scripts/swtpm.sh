# swtpm_start DIR: a software TPM 2.0 of its own for tests and benchmarks
# (sourced, bash). Starts swtpm on the Unix socket DIR/tpm.sock (control:
# DIR/tpm.sock.ctrl, where the swtpm TCTI looks for it) with its state in
# DIR/tpmstate and its log in DIR/swtpm.log, sets SWTPM_PID, exports
# TPM2TOOLS_TCTI, and waits until it answers a command (tpm2_getcap; its
# errors in DIR/getcap.err). Returns 1 if it never does (about 5 s) or
# exits first; the caller stops it (kill "$SWTPM_PID") either way.
swtpm_start() {
    local dir=$1 _
    mkdir -p "$dir/tpmstate"
    swtpm socket --tpm2 --server type=unixio,path="$dir/tpm.sock" \
        --ctrl type=unixio,path="$dir/tpm.sock.ctrl" --tpmstate dir="$dir/tpmstate" \
        --flags not-need-init,startup-clear --log file="$dir/swtpm.log" \
        >>"$dir/swtpm.log" 2>&1 &
    SWTPM_PID=$!
    export TPM2TOOLS_TCTI="swtpm:path=$dir/tpm.sock"
    for _ in $(seq 1 500); do
        tpm2_getcap properties-fixed >/dev/null 2>"$dir/getcap.err" && return 0
        kill -0 "$SWTPM_PID" 2>/dev/null || return 1
        sleep 0.01
    done
    return 1
}
