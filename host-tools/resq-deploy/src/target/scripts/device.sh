# The device side of `resq flash`: POSIX sh with coreutils or busybox (sha256sum, tar, df,
# mv -T). Run by the host as `sh -c SCRIPT resq COMMAND ROOT ARGS…` with ROOT =
# <prefix>/opt/resq, so that stdin is free for data; a line RESQ_KILL=… (fault injection for
# tests, normally empty) is put in front of this text. Lines starting with `resq-` are read by
# the host; `resq-done` ends a command that succeeded.
#
# The invariant: `current` and `previous` only ever point at complete releases (a release is
# complete once its manifest.json exists: it is renamed into place last, after every other
# file was checked against its SHA-256, fsynced and renamed), and each link changes by one
# rename(2). So a power cut or a killed flash at any moment leaves the old or the new release.
set -u
umask 022
CMD=$1
R=$2
shift 2
KL=${RESQ_KILL%:*}
KN=${RESQ_KILL##*:}
KC=0

die() {
	k=$1
	shift
	echo "resq-error $k $*"
	exit 3
}
# A kill point for the interruption tests.
kp() {
	echo "resq-kp $1"
	if [ "$1" = "$KL" ]; then
		KC=$((KC + 1))
		if [ "$KC" = "$KN" ]; then kill -9 $$; fi
	fi
}
# fsync one file or folder (coreutils >= 8.24, busybox); else a whole-system sync.
fsync() { sync -- "$1" 2>/dev/null || sync; }
# Points link $1 at $2 ("-" removes it) with one rename(2); $3 names the kill points.
setlink() {
	if [ "$2" = - ]; then
		rm -f "$1"
		kp "remote-$3"
		return 0
	fi
	rm -f "$1.tmp"
	ln -s "$2" "$1.tmp" || die io "cannot create the link $R/$1.tmp"
	kp "remote-$3-link"
	if ! mv -T "$1.tmp" "$1" 2>/dev/null; then
		rm -f "$1.tmp"
		die tool "cannot replace $R/$1 atomically (mv -T failed): it must be a symbolic link, and the device needs GNU coreutils or a busybox mv with -T"
	fi
	kp "remote-$3"
}
# Free KiB on the file system that holds $1 (or its nearest existing parent).
free_kb() {
	p=$1
	while [ ! -d "$p" ]; do
		p=${p%/*}
		[ -n "$p" ] || p=/
	done
	set -- $(df -Pk "$p" 2>/dev/null | tail -n 1)
	echo "${4:-}"
}
is_complete() { [ -f "$R/releases/$1/manifest.json" ]; }

# activate ID: previous -> what current was, then current -> releases/ID.
do_activate() {
	is_complete "$1" || die incomplete "$R/releases/$1 is not complete, so it is not activated"
	old=$(readlink current 2>/dev/null || true)
	if [ -n "$old" ] && [ "$old" != "releases/$1" ]; then
		setlink previous "$old" activate-previous
	fi
	setlink current "releases/$1" activate-current
	fsync .
	kp remote-activate-sync
}
# restore CURRENT PREVIOUS (release ids, or - for none): sets both links back.
do_restore() {
	c=-
	[ "$1" = - ] || c="releases/$1"
	p=-
	[ "$2" = - ] || p="releases/$2"
	if [ "$c" != - ] && ! is_complete "$1"; then die incomplete "$R/releases/$1 is not complete"; fi
	setlink current "$c" restore-current
	setlink previous "$p" restore-previous
	fsync .
}
# remove ID…: deletes releases, renamed first so a half-deleted one never looks complete;
# never what current or previous points at now.
do_remove() {
	for id in "$@"; do
		[ -d "releases/$id" ] || continue
		case " $(readlink current 2>/dev/null) $(readlink previous 2>/dev/null) " in
		*" releases/$id "*) continue ;;
		esac
		mv "releases/$id" "releases/.trash-$id" || die io "cannot remove $R/releases/$id"
		kp remote-remove-rename
		rm -rf "releases/.trash-$id"
		kp remote-remove
	done
	fsync releases
}
# The self-test of what current points at; prints its exit code and output.
do_selftest() {
	out=$("$R/current/resq-fw" selftest --model "$R/current/model.resq" --board "$R/current/board.toml" 2>&1)
	code=$?
	echo "resq-selftest $code"
	printf '%s\n' "$out" | while IFS= read -r l; do echo "resq-out $l"; done
	return $code
}

# Makes $1 a symbolic link to $2 with one rename (for the service's [install] paths).
do_link() {
	if [ -d "$1" ] && [ ! -L "$1" ]; then die service "$1 is a folder, not the file the unit runs"; fi
	if [ -e "$1" ] && [ ! -L "$1" ]; then
		echo "resq-warning $1 was a file; it is now a link to $2 (the current release)"
	fi
	out=$(mkdir -p "${1%/*}" 2>&1 && rm -f "$1.resq-new" && ln -s "$2" "$1.resq-new" 2>&1 &&
		mv -f "$1.resq-new" "$1" 2>&1) || die permission "cannot link $1 to $2: $out"
}
# Restarts service unit $1 (a path) if it runs, so that it runs what current points at.
do_restart() {
	name=${1##*/}
	if [ -f "$1" ] && command -v systemctl >/dev/null 2>&1 && systemctl is-active --quiet "$name" 2>/dev/null; then
		if out=$(systemctl restart "$name" 2>&1); then
			echo "resq-service restarted $name"
		else
			echo "resq-warning could not restart $name: $out"
		fi
	fi
}

case "$CMD" in
state)
	# state [verify]: links, releases, free space, architecture, manifests.
	for l in current previous; do
		if [ -L "$R/$l" ]; then
			echo "resq-link $l $(readlink "$R/$l")"
		elif [ -e "$R/$l" ]; then
			echo "resq-link $l !not-a-link"
		fi
	done
	if [ -d "$R/releases" ]; then
		for d in "$R"/releases/* "$R"/releases/.[!.]*; do
			[ -d "$d" ] || continue
			n=${d##*/}
			if is_complete "$n"; then
				echo "resq-release complete $n"
			else
				echo "resq-release incomplete $n"
			fi
		done
	fi
	echo "resq-free $(free_kb "$R")"
	echo "resq-arch $(uname -m)"
	for l in current previous; do
		if [ -f "$R/$l/manifest.json" ]; then
			echo "resq-manifest $l $(tr -d '\n' <"$R/$l/manifest.json")"
		fi
	done
	if [ "${1:-}" = verify ] && [ -f "$R/current/SHA256SUMS" ]; then
		if (cd "$R/current" && sha256sum -c SHA256SUMS >/dev/null 2>&1); then
			echo "resq-verified ok"
		else
			echo "resq-verified bad"
		fi
	fi
	;;
stage)
	# stage ID NEED_KB NKEEP KEEP… [NAME SHA256 MODE]…, a tar stream of .NAME.part files on
	# stdin: removes what an interrupted flash left (incomplete releases other than KEEP, dot
	# folders, *.tmp links), checks the free space, unpacks into releases/ID, then checks every
	# SHA-256, fsyncs, and renames the files into place, manifest.json last.
	id=$1
	need=$2
	nkeep=$3
	shift 3
	keep=
	while [ "$nkeep" -gt 0 ]; do
		keep="$keep $1"
		shift
		nkeep=$((nkeep - 1))
	done
	command -v sha256sum >/dev/null 2>&1 || die tool "the device has no sha256sum (coreutils or busybox)"
	command -v tar >/dev/null 2>&1 || die tool "the device has no tar (coreutils/tar or busybox)"
	out=$(mkdir -p "$R/releases" 2>&1) || die permission "cannot create $R/releases: $out"
	out=$( (: >"$R/releases/.resq-probe") 2>&1) || die permission "cannot write in $R/releases: $out"
	rm -f "$R/releases/.resq-probe" "$R/current.tmp" "$R/previous.tmp"
	for d in "$R"/releases/* "$R"/releases/.[!.]*; do
		[ -d "$d" ] || continue
		n=${d##*/}
		case "$n" in
		.*) rm -rf "$d" ;;
		*)
			kept=0
			for k in $keep; do [ "$n" = "$k" ] && kept=1; done
			if [ $kept = 0 ] && ! is_complete "$n"; then
				mv "$d" "$R/releases/.trash-$n" && rm -rf "$R/releases/.trash-$n"
			fi
			;;
		esac
		kp remote-prepare-clean
	done
	avail=$(free_kb "$R/releases")
	if [ -n "$avail" ] && [ "$avail" -lt "$need" ]; then
		die disk-full "only $((avail / 1024)) MiB free for $R, the release needs $((need / 1024 + 1)) MiB; nothing was changed"
	fi
	if is_complete "$id"; then die exists "$R/releases/$id is already installed"; fi
	out=$(mkdir "$R/releases/$id" 2>&1) || die permission "cannot create $R/releases/$id: $out"
	fsync "$R/releases"
	kp remote-prepare
	cd "$R/releases/$id" || die missing "$R/releases/$id does not exist"
	if ! out=$(tar -xf - 2>&1); then
		case "$out" in
		*"No space left"*) die disk-full "the disk is full writing $R/releases/$id; nothing was activated" ;;
		*"Permission denied"* | *"Read-only"*) die permission "cannot write $R/releases/$id: $out" ;;
		*) die io "the transfer to $R/releases/$id broke off ($out); nothing was activated" ;;
		esac
	fi
	kp remote-received
	all="$*"
	while [ $# -ge 3 ]; do
		f=".$1.part"
		[ -f "$f" ] || die missing "$1 did not arrive in $R/releases/$id"
		got=$(sha256sum "$f")
		got=${got%% *}
		[ "$got" = "$2" ] || die corrupt "$1 arrived damaged in $R/releases/$id: SHA-256 $got, expected $2"
		chmod "$3" "$f" || die permission "cannot chmod $f"
		fsync "$f"
		kp remote-seal-verified
		shift 3
	done
	set -- $all
	while [ $# -ge 3 ]; do
		if [ "$1" != manifest.json ]; then
			mv -f ".$1.part" "$1" || die io "cannot rename .$1.part in $R/releases/$id"
			kp remote-seal-rename
		fi
		shift 3
	done
	fsync .
	kp remote-seal-sync
	mv -f .manifest.json.part manifest.json || die io "cannot rename .manifest.json.part in $R/releases/$id"
	fsync .
	kp remote-seal-manifest
	;;
verify)
	# verify ID [NAME SHA256 MODE]…: checks an installed release.
	id=$1
	shift
	cd "$R/releases/$id" 2>/dev/null || die missing "$R/releases/$id does not exist"
	while [ $# -ge 3 ]; do
		[ -f "$1" ] || die corrupt "$1 is missing in $R/releases/$id"
		got=$(sha256sum "$1")
		got=${got%% *}
		[ "$got" = "$2" ] || die corrupt "$1 in $R/releases/$id is damaged: SHA-256 $got, expected $2"
		shift 3
	done
	;;
activate)
	cd "$R" || die missing "$R does not exist"
	do_activate "$1"
	;;
switch)
	# switch ID CURRENT PREVIOUS DROP UNIT: activates ID and self-tests it; on failure sets
	# the links back to CURRENT and PREVIOUS (and deletes ID if DROP is 1), on success
	# restarts the service UNIT if it runs. One script that a lost connection does not stop,
	# so a dying host cannot leave an untested switch.
	trap '' HUP PIPE
	cd "$R" || die missing "$R does not exist"
	do_activate "$1"
	kp remote-switched
	if do_selftest; then
		do_restart "$5"
	else
		do_restore "$2" "$3"
		if [ "$4" = 1 ]; then do_remove "$1"; fi
		echo "resq-restored"
	fi
	;;
selftest)
	cd "$R" || die missing "$R does not exist"
	do_selftest
	;;
restore)
	cd "$R" || die missing "$R does not exist"
	do_restore "$1" "$2"
	;;
remove)
	cd "$R" || die missing "$R does not exist"
	do_remove "$@"
	;;
service)
	# service UNIT_PATH USER BIN MODEL, the unit on stdin: links BIN and MODEL (the profile's
	# [install] paths, which the unit runs) to the current release, installs the unit
	# (atomically), enables and (re)starts it.
	unit=$1
	user=$2
	name=${unit##*/}
	command -v systemctl >/dev/null 2>&1 || die service "the device has no systemctl (not a systemd system)"
	id -u "$user" >/dev/null 2>&1 || die service-user "the service user $user does not exist on the device"
	do_link "$3" "$R/current/resq-fw"
	do_link "$4" "$R/current/model.resq"
	out=$( (cat >"$unit.resq-new") 2>&1) || { rm -f "$unit.resq-new"; die permission "cannot write $unit: $out"; }
	fsync "$unit.resq-new"
	mv -f "$unit.resq-new" "$unit" || die permission "cannot install $unit"
	out=$(systemctl daemon-reload 2>&1 && systemctl enable "$name" 2>&1 && systemctl restart "$name" 2>&1) ||
		die service "systemctl could not enable and start $name: $out"
	echo "resq-service enabled and started $name"
	;;
restart)
	do_restart "$1"
	;;
*) die internal "unknown command $CMD" ;;
esac
echo resq-done
