#!/bin/sh
# Runs inside the guest against the 9p mount at $1; prints "PASS name" / "FAIL name: why" per
# check and "RESULT n passed, m failed". busybox sh and tools only.
D=${1:-/mnt}/kt
pass=0; fail=0
ok() { echo "PASS $1"; pass=$((pass + 1)); }
bad() { echo "FAIL $1: $2"; fail=$((fail + 1)); }
check() { name=$1; shift; if out=$("$@" 2>&1); then ok "$name"; else bad "$name" "$(echo $out | head -c 200)"; fi; }

rm -rf "$D" 2>/dev/null
check mkdir mkdir "$D"

# create, write, read back with a checksum
dd if=/dev/urandom of=/tmp/src bs=4096 count=300 2>/dev/null
want=$(md5sum < /tmp/src | cut -d' ' -f1)
check create_write cp /tmp/src "$D/data"
got=$(md5sum < "$D/data" | cut -d' ' -f1)
[ "$got" = "$want" ] && ok read_back_checksum || bad read_back_checksum "$got != $want"
[ "$(stat -c %s "$D/data")" = 1228800 ] && ok size || bad size "$(stat -c %s "$D/data")"

# append
echo first > "$D/app"; echo second >> "$D/app"
[ "$(cat "$D/app")" = "$(printf 'first\nsecond')" ] && ok append || bad append "$(cat "$D/app")"

# truncate (shrink and extend)
check truncate_shrink truncate -s 100 "$D/data"
[ "$(stat -c %s "$D/data")" = 100 ] && ok truncate_size || bad truncate_size "$(stat -c %s "$D/data")"
check truncate_extend truncate -s 5000 "$D/data"
[ "$(tail -c 10 "$D/data" | od -An -tx1 | tr -d ' \n')" = 00000000000000000000 ] \
  && ok truncate_zero_fill || bad truncate_zero_fill "tail not zero"

# rename, across directories and over an existing file
mkdir -p "$D/sub"
check rename mv "$D/app" "$D/sub/app2"
[ -f "$D/sub/app2" ] && [ ! -e "$D/app" ] && ok rename_visible || bad rename_visible "app2 missing or app left"
echo victim > "$D/victim"
check rename_replace mv "$D/sub/app2" "$D/victim"
[ "$(head -1 "$D/victim")" = first ] && ok rename_replace_content || bad rename_replace_content "$(cat "$D/victim")"

# unlink while open: data stays readable through the open fd
echo "still here" > "$D/ghost"
exec 3< "$D/ghost"
rm "$D/ghost"
[ ! -e "$D/ghost" ] && ok unlink_open_gone || bad unlink_open_gone "name still there"
[ "$(cat <&3)" = "still here" ] && ok unlink_open_read || bad unlink_open_read "fd read failed"
exec 3<&-

# mkdir / rmdir, non-empty rmdir fails
check mkdir_nested mkdir -p "$D/a/b/c"
if rmdir "$D/a" 2>/dev/null; then bad rmdir_nonempty "rmdir of a non-empty dir succeeded"; else ok rmdir_nonempty; fi
check rmdir sh -c "rmdir '$D/a/b/c' && rmdir '$D/a/b' && rmdir '$D/a'"
[ ! -e "$D/a" ] && ok rmdir_gone || bad rmdir_gone "still there"

# symlink / readlink
check symlink ln -s ../victim "$D/sub/sl"
[ "$(readlink "$D/sub/sl")" = ../victim ] && ok readlink || bad readlink "$(readlink "$D/sub/sl")"
[ "$(head -1 "$D/sub/sl")" = first ] && ok symlink_follow || bad symlink_follow "no content"

# hard link
check link ln "$D/victim" "$D/hard"
[ "$(stat -c %h "$D/victim")" = 2 ] && ok link_count || bad link_count "$(stat -c %h "$D/victim")"
[ "$(stat -c %i "$D/victim")" = "$(stat -c %i "$D/hard")" ] && ok link_same_inode || bad link_same_inode "inodes differ"

# chmod
check chmod chmod 0741 "$D/victim"
[ "$(stat -c %a "$D/victim")" = 741 ] && ok chmod_visible || bad chmod_visible "$(stat -c %a "$D/victim")"

# xattr (only if the guest has the tools)
if command -v setfattr >/dev/null 2>&1; then
  check xattr_set setfattr -n user.k -v v1 "$D/victim"
  [ "$(getfattr --only-values -n user.k "$D/victim")" = v1 ] && ok xattr_get || bad xattr_get "mismatch"
else
  echo "SKIP xattr: no setfattr in the guest (busybox); covered by gofer_test over our client"
fi

# readdir of 1000 entries
mkdir "$D/many"
i=0; while [ $i -lt 1000 ]; do : > "$D/many/f$i"; i=$((i + 1)); done
n=$(ls "$D/many" | wc -l)
[ "$n" = 1000 ] && ok readdir_1000 || bad readdir_1000 "saw $n"
n=$(ls "$D/many" | sort -u | wc -l)
[ "$n" = 1000 ] && ok readdir_no_duplicates || bad readdir_no_duplicates "saw $n unique"

# errno end to end
if ls "$D/nonexistent" 2>/dev/null; then bad enoent "listed a missing file"; else ok enoent; fi
if mkdir "$D/sub" 2>/dev/null; then bad eexist "mkdir over existing"; else ok eexist; fi

# A file for the host to check.
echo "written by the Linux 9p client" > "$D/from-guest.txt"
sync
echo "RESULT $pass passed, $fail failed"
