#!/usr/bin/env bash
# Install siro-poller as the systemd service systemd/siro-poller.service describes, from the
# checkout this script is in. Run it as root; it prints every command before running it.
#
#   systemd/install.sh [--root DIR] [--dry-run]
#       The system user siro-poller, /etc/siro-poller and its credentials directory, a venv in
#       /opt/siro-poller with this checkout and the PostgreSQL extra, the config (only when
#       there is none yet), the unit, systemctl daemon-reload. Run again to upgrade.
#   systemd/install.sh [--root DIR] [--dry-run] [--plain] credential KEY
#       One secret, read from stdin (typed at a prompt on a terminal), encrypted with
#       systemd-creds into /etc/siro-poller/credentials/KEY and loaded by the service through
#       LoadCredentialEncrypted= in the drop-in siro-poller.service.d/credentials.conf.
#       KEY is the dotted config key: siro.api_token, provider.token, database.password...
#       --plain: a plain file readable by root only, and LoadCredential=, for a systemd
#       without systemd-creds (before 250).
#
#   --root DIR  install into DIR instead of /, as for an image: what acts on the running
#               system (useradd, systemctl) is printed and skipped, files keep root's group.
#   --dry-run   print the commands and change nothing.
set -euo pipefail

SERVICE=siro-poller
SOURCE=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
PREFIX=/opt/siro-poller
CONFIG_DIR=/etc/siro-poller
CREDENTIALS_DIR=$CONFIG_DIR/credentials
STATE_DIR=/var/lib/siro-poller
UNIT_DIR=/etc/systemd/system
DROP_IN=$UNIT_DIR/$SERVICE.service.d/credentials.conf

ROOT=""
DRY_RUN=no
PLAIN=no

fail() {
    echo "install.sh: $*" >&2
    exit 2
}

usage() {
    sed -n '2,19p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'
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
    # The config directory is group-readable by the service; the credentials directory is
    # root's alone, since systemd (as root) reads it and hands the service a private copy.
    local group=(-g "$SERVICE")
    if [[ -n $ROOT ]]; then
        group=()
    fi

    if [[ -n $ROOT ]] || ! getent passwd "$SERVICE" >/dev/null; then
        on_system useradd --system --user-group --home-dir "$STATE_DIR" --no-create-home \
            --shell /usr/sbin/nologin --comment "siro-poller daemon" "$SERVICE"
    fi
    run install -d -m 0750 "${group[@]}" "$ROOT$CONFIG_DIR"
    run install -d -m 0700 "$ROOT$CREDENTIALS_DIR"

    # A venv of its own: the service's Python packages never mix with the system's.
    if [[ ! -x $ROOT$PREFIX/bin/python ]]; then
        run python3 -m venv "$ROOT$PREFIX"
    fi
    run "$ROOT$PREFIX/bin/pip" install --upgrade "$SOURCE[postgres]"

    # The config is copied once; an existing one is the admin's and stays as it is. state_dir
    # is set so that the CLI, run outside the service, finds the service's database.
    local config=$ROOT$CONFIG_DIR/config.toml
    if [[ -e $config ]]; then
        echo "kept: $config"
    else
        run install -m 0640 "${group[@]}" "$SOURCE/config.example.toml" "$config"
        run sed -i "s|^# state_dir = \"$STATE_DIR\"\$|state_dir = \"$STATE_DIR\"|" "$config"
        if [[ $DRY_RUN == no ]] && ! grep -qx "state_dir = \"$STATE_DIR\"" "$config"; then
            fail "could not set state_dir in $config: set state_dir = \"$STATE_DIR\" there"
        fi
    fi

    run install -d -m 0755 "$ROOT$UNIT_DIR"
    run install -m 0644 "$SOURCE/systemd/$SERVICE.service" "$ROOT$UNIT_DIR/$SERVICE.service"
    on_system systemctl daemon-reload

    local self=$0
    if [[ -n $ROOT ]]; then
        self="$0 --root $ROOT"
    fi
    cat <<EOF

Next:
  1. Edit $config (siro.client_id, siro.token_user_id, [provider]).
  2. Give each secret: $self credential siro.api_token
                       $self credential siro.client_secret
                       $self credential provider.token   (your provider kind's secrets)
  3. systemctl enable --now $SERVICE
  4. systemctl status $SERVICE; journalctl -u $SERVICE
EOF
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
