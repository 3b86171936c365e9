#!/bin/bash
# vhdfsck repair cases, e2fsprogs style: every directory tests/fsck/<case>/
# holds
#   recipe   bash: builds and damages $IMG (key file $KEY) with $DAMAGE
#            (the fsck_damage helper), $MKVHD or $VHDTOOL; exit 77 skips
#            the case (say why on the last line)
#   opts.1   options of the first vhdfsck run (one line; default -y)
#   expect.1 extended regexps, one a line, each must match a line of the
#            first run's output (stdout + stderr)
#   exit.1   expected status of the first run
#   exit.2   expected status of a second run with -n (after any repair)
#   expect.2 (optional) as expect.1, for the second run
# With --json in opts.1, standard output must parse as JSON.
# When the second run is clean, fsck.fat -n must agree on the exported
# volume (an independent oracle). Adding a case needs no code.
. "$(dirname "$0")/lib.sh"
DAMAGE=$VD_BUILD/fsck/fsck_damage
need "$VHDFSCK" "$DAMAGE"
have_fsckfat=1
command -v fsck.fat >/dev/null 2>&1 || have_fsckfat=0
export DAMAGE MKVHD VHDTOOL VHDFSCK

match_all() { # patterns-file output-file case run
    local pat
    while IFS= read -r pat || [[ -n "$pat" ]]; do
        [[ -z "$pat" || "$pat" == \#* ]] && continue
        grep -Eq -- "$pat" "$2" || { cat "$2" >&2; fail "$3: run $4: output lacks /$pat/"; }
    done <"$1"
}

n=0
for dir in "$VD_SRC"/tests/fsck/*/; do
    name=$(basename "$dir")
    [[ -f "$dir/recipe" ]] || continue
    W=$T/$name
    mkdir -p "$W"
    export IMG=$W/img.vhd KEY=$W/key WORK=$W
    rrc=0
    (cd "$W" && bash -e "$dir/recipe") >"$W/recipe.log" 2>&1 || rrc=$?
    if [[ $rrc == 77 ]]; then
        note "$name skipped: $(tail -n1 "$W/recipe.log")"
        continue
    fi
    [[ $rrc == 0 ]] || { cat "$W/recipe.log" >&2; fail "$name: recipe failed"; }
    opts=-y
    [[ -f "$dir/opts.1" ]] && opts=$(head -n1 "$dir/opts.1")
    for run in 1 2; do
        [[ $run == 2 ]] && opts=-n
        got=0
        # shellcheck disable=SC2086 # opts is a word list on purpose
        "$VHDFSCK" $opts --key-file "$KEY" "$IMG" >"$W/stdout.$run" 2>"$W/stderr.$run" \
            </dev/null || got=$?
        cat "$W/stdout.$run" "$W/stderr.$run" >"$W/out.$run"
        if [[ " $opts " == *" --json "* ]] && command -v python3 >/dev/null; then
            python3 -m json.tool "$W/stdout.$run" >/dev/null ||
                { cat "$W/stdout.$run" >&2; fail "$name: run $run: --json output is not JSON"; }
        fi
        want=$(head -n1 "$dir/exit.$run")
        [[ "$got" == "$want" ]] ||
            { cat "$W/out.$run" >&2; fail "$name: run $run ($opts) exit $got, expected $want"; }
        [[ -f "$dir/expect.$run" ]] && match_all "$dir/expect.$run" "$W/out.$run" "$name" "$run"
    done
    if [[ $(head -n1 "$dir/exit.2") == 0 && $have_fsckfat == 1 ]]; then
        "$DAMAGE" export "$IMG" "$KEY" "$W/raw" || fail "$name: export failed"
        fsck.fat -n "$W/raw" >"$W/fsckfat" 2>&1 ||
            { cat "$W/fsckfat" >&2; fail "$name: fsck.fat -n disagrees after repair"; }
    fi
    note "$name ok"
    n=$((n + 1))
done
[[ $n -ge 15 ]] || fail "only $n cases ran"
echo "$n cases passed"
