#!/usr/bin/env bash
# Install siro-poller as the systemd service systemd/siro-poller.service describes, from the
# checkout this script is in. Run it as root; it prints every command before running it.
#
#   systemd/install.sh [--root DIR] [--dry-run]
#       The system user siro-poller (sysusers.d), /etc/siro-poller and its credentials
#       directory, a venv in /opt/siro-poller with this checkout and the PostgreSQL extra, the
#       config (only when there is none yet) readable by the service's group (tmpfiles.d), the
#       unit, systemctl daemon-reload. Run again to upgrade.
#   systemd/install.sh [--root DIR] [--dry-run] [--plain] credential KEY
#       One secret, read from stdin (typed at a prompt on a terminal), encrypted with
#       systemd-creds into /etc/siro-poller/credentials/KEY and loaded by the service through
#       LoadCredentialEncrypted= in the drop-in siro-poller.service.d/credentials.conf.
#       KEY is the dotted config key: siro.api_token, provider.token, database.password...
#       --plain: a plain file readable by root only, and LoadCredential=, for a systemd
#       without systemd-creds (before 250).
#
#   --root DIR  install into DIR instead of /, a staging root for an image or a package: the
#               files go under DIR, made to run at their final paths (the venv's scripts name
#               /opt/siro-poller, not DIR). What acts on the running system (systemd-sysusers,
#               systemd-tmpfiles, systemctl) is printed and skipped: on the target, systemd
#               makes the user and gives the config to its group at boot.
#   --dry-run   print the commands and change nothing.
set -euo pipefail

SERVICE=siro-poller
SOURCE=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
PREFIX=/opt/siro-poller
CONFIG_DIR=/etc/siro-poller
CREDENTIALS_DIR=$CONFIG_DIR/credentials
STATE_DIR=/var/lib/siro-poller
UNIT_DIR=/etc/systemd/system
SYSUSERS=/etc/sysusers.d/$SERVICE.conf
TMPFILES=/etc/tmpfiles.d/$SERVICE.conf
DROP_IN=$UNIT_DIR/$SERVICE.service.d/credentials.conf

ROOT=""
DRY_RUN=no
PLAIN=no

fail() {
    echo "install.sh: $*" >&2
    exit 2
}

usage() {
    sed -n '2,23p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'
}

# A command as it would be typed: arguments quoted where the shell needs it.
shown() {
    local arg out=()
    for arg in "$@"; do
        if [[ $arg =~ ^[A-Za-z0-9_./:=@%+,-]+$ ]]; then
            out+=("$arg")
        else
            out+=("'${arg//\'/\'\\\'\'}'")
        fi
    done
    echo "${out[*]}"
}

# Print a command, then run it (unless --dry-run).
run() {
    echo "+ $(shown "$@")"
    if [[ $DRY_RUN == no ]]; then
        "$@"
    fi
}

# A command that acts on the running system rather than on files: skipped under --root.
on_system() {
    if [[ -n $ROOT ]]; then
        echo "skipped (--root): $(shown "$@")"
    else
        run "$@"
    fi
}

need_root() {
    if [[ -z $ROOT && $DRY_RUN == no && $(id -u) != 0 ]]; then
        fail "run this as root (sudo $0 $*), or with --root DIR or --dry-run"
    fi
}

check_python() {
    command -v python3 >/dev/null || fail "python3 is not installed (Debian: apt install python3)"
    python3 -c 'import sys; sys.exit(sys.version_info < (3, 11))' ||
        fail "siro-poller needs Python 3.11 or later; python3 is $(python3 -V 2>&1)"
    # Debian and Ubuntu ship venv's pip bootstrap in a separate package.
    python3 -c 'import ensurepip, venv' 2>/dev/null ||
        fail "python3 cannot make a venv here: apt install python3-venv"
    # The venv runs this interpreter; the service cannot see home directories (ProtectHome=).
    local interpreter
    interpreter=$(python3 -c \
        'import os, sys; print(os.path.realpath(getattr(sys, "_base_executable", sys.executable)))')
    if [[ $interpreter =~ ^(/root|/home|/run/user)/ ]]; then
        local problem="python3 is $interpreter, in a home directory the service cannot see"
        if [[ -n $ROOT || $DRY_RUN == yes ]]; then
            echo "warning: $problem" >&2
        else
            fail "$problem: run with the system's python3 first on PATH (PATH=/usr/bin:\$PATH)"
        fi
    fi
}

install_service() {
    need_root install
    check_python
    # Whatever root's umask, the service's user must be able to read and run the venv.
    umask 022
    # The user, and who may read the config, are declarations systemd applies: here at once,
    # and at every boot, so that an image made with --root gets them on its target too.
    install_declaration "$SOURCE/systemd/$SERVICE.sysusers" "$SYSUSERS"
    on_system systemd-sysusers "$SYSUSERS"
    run install -d -m 0750 "$ROOT$CONFIG_DIR"
    run install -d -m 0700 "$ROOT$CREDENTIALS_DIR"

    # A venv of its own: the service's Python packages never mix with the system's.
    local venv=$ROOT$PREFIX
    if [[ ! -x $venv/bin/python ]]; then
        run python3 -m venv "$venv"
    fi
    if [[ -n $ROOT ]]; then
        # Its scripts name $PREFIX once relocate_venv has run, so pip runs through the venv's
        # python; modules are compiled after, with their final paths.
        run "$venv/bin/python" -m pip install --upgrade --no-compile "$SOURCE[postgres]"
        relocate_venv "$venv" "$PREFIX"
    else
        run "$venv/bin/pip" install --upgrade "$SOURCE[postgres]"
    fi

    # The config is copied once; an existing one is the admin's and stays as it is. state_dir
    # is set so that the CLI, run outside the service, finds the service's database.
    local config=$ROOT$CONFIG_DIR/config.toml
    if [[ -e $config ]]; then
        echo "kept: $config"
    else
        run install -m 0640 "$SOURCE/config.example.toml" "$config"
        run sed -i "s|^# state_dir = \"$STATE_DIR\"\$|state_dir = \"$STATE_DIR\"|" "$config"
        if [[ $DRY_RUN == no ]] && ! grep -qx "state_dir = \"$STATE_DIR\"" "$config"; then
            fail "could not set state_dir in $config: set state_dir = \"$STATE_DIR\" there"
        fi
    fi

    # The config directory and the config: root's, read-only for the service's group.
    install_declaration "$SOURCE/systemd/$SERVICE.tmpfiles" "$TMPFILES"
    on_system systemd-tmpfiles --create "$TMPFILES"

    run install -d -m 0755 "$ROOT$UNIT_DIR"
    run install -m 0644 "$SOURCE/systemd/$SERVICE.service" "$ROOT$UNIT_DIR/$SERVICE.service"
    on_system systemctl daemon-reload

    if [[ -n $ROOT ]]; then
        local interpreter
        interpreter=$(python3 -c 'import sys; print(sys._base_executable)')
        cat <<EOF

$ROOT is a staging root, to be / on its target. There:
  - the venv runs $interpreter ($(python3 -V)): it must be at that path;
  - at boot, systemd makes the user $SERVICE ($SYSUSERS)
    and gives its group read access to $CONFIG_DIR ($TMPFILES).
EOF
    fi
    if [[ -n $ROOT ]]; then
        # systemd-creds encrypts with this machine's key, which the target does not have: the
        # secrets are given on the target, into its own credentials directory.
        cat <<EOF

Next:
  1. Edit $config (siro.client_id, siro.token_user_id, [provider]).
  2. Install the image; then, on the target, give each secret with this script copied
     there (a secret encrypted on this machine would not open on the target):
       install.sh credential siro.api_token
       install.sh credential siro.client_secret
       install.sh credential provider.token   (your provider kind's secrets)
  3. There: systemctl enable --now $SERVICE
  4. There: systemctl status $SERVICE; journalctl -u $SERVICE
EOF
        return
    fi
    cat <<EOF

Next:
  1. Edit $config (siro.client_id, siro.token_user_id, [provider]).
  2. Give each secret: $0 credential siro.api_token
                       $0 credential siro.client_secret
                       $0 credential provider.token   (your provider kind's secrets)
  3. systemctl enable --now $SERVICE
  4. systemctl status $SERVICE; journalctl -u $SERVICE
EOF
}

# A file of systemd's declarations (sysusers.d, tmpfiles.d), in its directory under the root.
install_declaration() {
    local source=$1 target=$2
    run install -d -m 0755 "$ROOT$(dirname "$target")"
    run install -m 0644 "$source" "$ROOT$target"
}

# A venv runs wherever it is, but for the absolute paths venv and pip write into it: the #!
# line of each script in bin/, the activate scripts and pyvenv.cfg as text, and each module's
# path in its compiled .pyc (shown in tracebacks). A venv built in DIR/opt/siro-poller gets
# /opt/siro-poller in each, so that it runs once DIR is the target's /. Building it at
# /opt/siro-poller instead would install into this machine, which --root must leave alone.
# The interpreter the venv links to, python3 on this machine, must be at the same path there.
# compileall -f: venv compiled its own pip at the staging path when it made the venv.
relocate_venv() {
    local built=$1 final=$2
    echo "+ write $final for $built in $built/bin/* and $built/pyvenv.cfg"
    if [[ $DRY_RUN == no ]]; then
        python3 - "$built" "$final" <<'EOF'
import sys
from pathlib import Path

built, final = sys.argv[1], sys.argv[2]
venv = Path(built)
for path in [*(venv / "bin").iterdir(), venv / "pyvenv.cfg"]:
    if path.is_file() and not path.is_symlink():
        text = path.read_bytes()
        if built.encode() in text:
            path.write_bytes(text.replace(built.encode(), final.encode()))
EOF
    fi
    run "$built/bin/python" -m compileall -q -f -j 0 -s "$ROOT" -p / "$built/lib"
}

# Read the secret: typed without echo on a terminal, else all of stdin. A trailing newline is
# never part of a secret (siro-poller strips it too).
read_secret() {
    local key=$1 secret
    if [[ -t 0 ]]; then
        IFS= read -r -s -p "$key: " secret
        echo >&2
    else
        secret=$(cat)
    fi
    [[ -n $secret ]] || fail "no secret given for $key on stdin"
    printf '%s' "$secret"
}

install_credential() {
    local key=$1
    # The name becomes a file name and a credential id: the dotted config keys, nothing else.
    [[ $key =~ ^[A-Za-z][A-Za-z0-9_-]*(\.[A-Za-z0-9_-]+)+$ ]] ||
        fail "credential KEY must be a dotted config key such as siro.api_token, not '$key'"
    need_root credential "$key"
    local file=$CREDENTIALS_DIR/$key
    local target=$ROOT$file
    local setting=LoadCredentialEncrypted
    if [[ $PLAIN == yes ]]; then
        setting=LoadCredential
    elif ! command -v systemd-creds >/dev/null; then
        fail "systemd-creds is not installed (systemd before 250): add --plain"
    fi
    [[ -d $ROOT$CREDENTIALS_DIR || $DRY_RUN == yes ]] ||
        fail "$ROOT$CREDENTIALS_DIR does not exist: run $0 first (without credential)"

    # Written beside the target and renamed, so a failure never leaves half a credential.
    if [[ $PLAIN == yes ]]; then
        echo "+ (umask 077; cat > $target.new) < secret"
    else
        echo "+ systemd-creds encrypt --name=$key - $target.new < secret"
    fi
    if [[ $DRY_RUN == no ]]; then
        local secret
        secret=$(read_secret "$key")
        if [[ $PLAIN == yes ]]; then
            (umask 077 && printf '%s' "$secret" >"$target.new")
        else
            (umask 077 && printf '%s' "$secret" |
                systemd-creds encrypt --name="$key" - "$target.new")
        fi
    fi
    run chmod 0600 "$target.new"
    run mv -f "$target.new" "$target"

    # One line per key in the drop-in: a key given again replaces its line.
    local drop_in=$ROOT$DROP_IN
    local line="$setting=$key:$file"
    echo "+ set '$line' in $drop_in"
    if [[ $DRY_RUN == no ]]; then
        mkdir -p "$(dirname "$drop_in")"
        local kept=""
        if [[ -f $drop_in ]]; then
            kept=$(grep -v -e '^\[Service\]$' -e "^LoadCredential\(Encrypted\)\{0,1\}=$key:" \
                "$drop_in" || true)
        fi
        {
            echo "[Service]"
            if [[ -n $kept ]]; then
                echo "$kept"
            fi
            echo "$line"
        } >"$drop_in.new"
        chmod 0644 "$drop_in.new"
        mv -f "$drop_in.new" "$drop_in"
    fi
    on_system systemctl daemon-reload
    echo "$key is in $target; restart $SERVICE if it is running"
}

main() {
    local action=install key=""
    while [[ $# -gt 0 ]]; do
        case $1 in
        --root)
            [[ $# -ge 2 ]] || fail "--root needs a directory"
            ROOT=$(cd "$2" && pwd) || fail "--root $2: no such directory"
            shift 2
            ;;
        --root=*)
            ROOT=$(cd "${1#--root=}" && pwd) || fail "$1: no such directory"
            shift
            ;;
        --dry-run) DRY_RUN=yes && shift ;;
        --plain) PLAIN=yes && shift ;;
        -h | --help) usage && exit 0 ;;
        install) action=install && shift ;;
        credential)
            [[ $# -ge 2 ]] || fail "credential needs a KEY, e.g. credential siro.api_token"
            action=credential key=$2
            shift 2
            ;;
        *) fail "unknown argument '$1' (--help lists them)" ;;
        esac
    done
    if [[ $ROOT == / ]]; then
        ROOT=""
    fi
    case $action in
    install) install_service ;;
    credential) install_credential "$key" ;;
    esac
}

main "$@"
