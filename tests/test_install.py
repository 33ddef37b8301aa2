"""The service install (systemd/install.sh) and the unit, as far as a machine without a container
or a running systemd allows.

The script installs for real into a temporary root: a venv with this checkout, the config, the
unit and encrypted credentials (with a host key of the test's own, through systemd-creds'
``$SYSTEMD_CREDENTIAL_SECRET``), skipping only systemd-sysusers, systemd-tmpfiles and systemctl.
What it installed runs at its final path, /opt/siro-poller, mounted there in a mount namespace
of its own. The unit is then checked as systemd would load it, drop-in included
(``systemd-analyze verify --root``), and its sandbox scored (``systemd-analyze security
--offline=true``).
"""

from __future__ import annotations

import os
import re
import shutil
import stat
import subprocess
import tomllib
from pathlib import Path

import pytest

from poller.cli.siro import SHOWN_ONCE_WARNING
from poller.config import Settings
from tests.wheelhouse import offline_pip

REPO = Path(__file__).resolve().parent.parent
INSTALL = REPO / "systemd" / "install.sh"
UNIT = REPO / "systemd" / "siro-poller.service"
CREDENTIALS = "/etc/siro-poller/credentials"
SECRETS = {
    "siro.api_token": "org-token-0123456789",
    "siro.client_secret": "client-secret-abcdef",
    "provider.token": "provider-token-e2e-0001",
}


def systemd_tool(name: str) -> str:
    """A systemd tool; the install cannot be checked without it, so it is never skipped."""
    found = shutil.which(name)
    assert found, f"{name} is not installed (Debian: apt install systemd)"
    return found


def install(
    *args: str, stdin: str = "", key_file: Path | None = None, wheelhouse: Path | None = None
) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SIRO_POLLER_")}
    if wheelhouse is not None:
        env |= offline_pip(wheelhouse)
    if key_file is not None:
        env["SYSTEMD_CREDENTIAL_SECRET"] = str(key_file)
    return subprocess.run(
        [str(INSTALL), *args], input=stdin, capture_output=True, text=True, env=env, check=False
    )


def at_final_path(
    root: Path, *command: str | Path, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """``command`` run as on the target: the root's /opt mounted on /opt, for this command only
    (a mount namespace of its own; this machine's /opt is left as it is)."""
    return subprocess.run(
        [
            "unshare",
            "--user",
            "--map-root-user",
            "--mount",
            "sh",
            "-c",
            'mount --bind "$0" /opt && exec "$@"',
            root / "opt",
            *command,
        ],
        capture_output=True,
        text=True,
        env=env,
        check=False,
    )


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def drop_in_lines(root: Path) -> list[str]:
    drop_in = root / "etc/systemd/system/siro-poller.service.d/credentials.conf"
    return drop_in.read_text(encoding="utf-8").splitlines()


def test_the_install_steps_run_into_a_root_and_the_service_would_get_its_secrets(
    tmp_path: Path, wheelhouse: Path
) -> None:
    root = tmp_path / "root"
    root.mkdir()
    # The script's pip builds and installs the checkout with its dependencies, as on a server,
    # finding them in the wheelhouse rather than the package index (tests/wheelhouse.py).
    done = install("--root", str(root), wheelhouse=wheelhouse)
    assert done.returncode == 0, done.stdout + done.stderr
    # What acts on the running system is named, and left out: at boot on the target, systemd
    # applies the declarations of the user and of the config's group.
    assert "skipped (--root): systemd-sysusers /etc/sysusers.d/siro-poller.conf" in done.stdout
    assert "skipped (--root): systemd-tmpfiles --create /etc/tmpfiles.d/siro-poller.conf" in (
        done.stdout
    )
    assert "skipped (--root): systemctl daemon-reload" in done.stdout
    for declaration in ("sysusers", "tmpfiles"):
        installed = root / f"etc/{declaration}.d/siro-poller.conf"
        assert installed.read_bytes() == (REPO / f"systemd/siro-poller.{declaration}").read_bytes()

    # The venv is made for /opt/siro-poller: nothing in it names the staging root.
    venv = Path("/opt/siro-poller")
    staged = root / "opt/siro-poller"
    leftovers = subprocess.run(
        ["grep", "-rlF", str(root), staged], capture_output=True, text=True, check=False
    )
    assert leftovers.stdout == ""
    assert (
        (staged / "bin/siro-poller")
        .read_text(encoding="utf-8")
        .startswith(f"#!{venv}/bin/python\n")
    )
    version = at_final_path(root, venv / "bin/siro-poller", "--version")
    assert version.stdout.startswith("siro-poller, version"), version.stderr
    assert mode(root / "etc/siro-poller") == 0o750
    assert mode(root / "etc/siro-poller/credentials") == 0o700
    config = root / "etc/siro-poller/config.toml"
    assert mode(config) == 0o640
    settings = tomllib.loads(config.read_text(encoding="utf-8"))
    assert settings["state_dir"] == "/var/lib/siro-poller"  # the CLI finds the service's data
    Settings(**settings)
    installed_unit = root / "etc/systemd/system/siro-poller.service"
    assert installed_unit.read_bytes() == UNIT.read_bytes()

    # The secrets, encrypted with a host key of this test's own.
    key_file = tmp_path / "host.secret"
    for key, secret in SECRETS.items():
        given = install(
            "--root", str(root), "credential", key, stdin=secret + "\n", key_file=key_file
        )
        assert given.returncode == 0, given.stdout + given.stderr
        stored = root / "etc/siro-poller/credentials" / key
        assert mode(stored) == 0o600
        assert secret.encode() not in stored.read_bytes()
        assert secret not in given.stdout + given.stderr
    assert drop_in_lines(root) == [
        "[Service]",
        *(f"LoadCredentialEncrypted={key}:{CREDENTIALS}/{key}" for key in SECRETS),
    ]

    # What systemd does at start: decrypt each into the service's credentials directory.
    credentials = tmp_path / "credentials"
    credentials.mkdir()
    for key in SECRETS:
        subprocess.run(
            [
                systemd_tool("systemd-creds"),
                "decrypt",
                f"--name={key}",
                str(root / "etc/siro-poller/credentials" / key),
                str(credentials / key),
            ],
            env={**os.environ, "SYSTEMD_CREDENTIAL_SECRET": str(key_file)},
            check=True,
            capture_output=True,
        )
        (credentials / key).chmod(0o400)  # as systemd leaves it, for the service's user only
        assert (credentials / key).read_text(encoding="utf-8") == SECRETS[key]
    service_env = {
        "PATH": os.environ["PATH"],
        "HOME": str(tmp_path),
        "CREDENTIALS_DIRECTORY": str(credentials),
        "SIRO_POLLER_STATE_DIR": str(tmp_path / "state"),  # /var/lib/siro-poller is not ours
    }
    checked = at_final_path(
        root, venv / "bin/siro-poller", "--config", config, "config", "check", env=service_env
    )
    for key in SECRETS:
        section, name = key.split(".")
        assert f'{name} = "********"' in checked.stdout.split(f"[{section}]")[1]
        assert key not in checked.stderr, checked.stderr
    upgraded = at_final_path(
        root, venv / "bin/siro-poller", "--config", config, "db", "upgrade", env=service_env
    )
    assert upgraded.returncode == 0, upgraded.stderr
    assert (tmp_path / "state/siro-poller.sqlite3").is_file()

    # The unit as systemd would load it from that root: its drop-in, its executables.
    system_units = next(
        path
        for path in (Path("/usr/lib/systemd/system"), Path("/lib/systemd/system"))
        if path.is_dir()
    )
    shutil.copytree(system_units, root / "usr/lib/systemd/system", symlinks=True)
    verified = subprocess.run(
        [systemd_tool("systemd-analyze"), "verify", f"--root={root}", "siro-poller.service"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert verified.returncode == 0, verified.stderr
    assert verified.stderr == ""  # unknown keys and bad values are only warnings

    # The completion script the README installs, from the installed entry point.
    completed = at_final_path(
        root,
        "bash",
        "-c",
        'eval "$(_SIRO_POLLER_COMPLETE=bash_source siro-poller)"; '
        "COMP_WORDS=(siro-poller ca); COMP_CWORD=1; _siro_poller_completion siro-poller; "
        'echo "${COMPREPLY[@]}"',
        env={"PATH": f"{venv / 'bin'}:{os.environ['PATH']}", "HOME": str(tmp_path)},
    )
    assert completed.stdout.split() == ["calls"], completed.stderr


@pytest.mark.skipif(os.geteuid() != 0, reason="giving a file to another group needs root")
def test_at_boot_the_declarations_make_the_user_and_give_the_config_to_its_group(
    tmp_path: Path,
) -> None:
    """What systemd-sysusers and systemd-tmpfiles do with the declarations install.sh puts in
    a root, as on the target's first boot: the service's group may read the config, no more."""
    config_dir = tmp_path / "etc/siro-poller"
    (config_dir / "credentials").mkdir(parents=True)
    config = config_dir / "config.toml"
    config.write_text("[siro]\n", encoding="utf-8")
    for path, as_staged in (
        (config_dir, 0o755),
        (config, 0o644),
        (config_dir / "credentials", 0o755),
    ):
        path.chmod(as_staged)  # as a packager's umask may have left them
    for tool, declaration in (("systemd-sysusers", "sysusers"), ("systemd-tmpfiles", "tmpfiles")):
        applied = subprocess.run(
            [
                systemd_tool(tool),
                f"--root={tmp_path}",
                *(["--create"] if tool == "systemd-tmpfiles" else []),
                REPO / f"systemd/siro-poller.{declaration}",
            ],
            capture_output=True,
            text=True,
            check=False,
        )
        assert applied.returncode == 0, applied.stderr

    group = next(
        line.split(":")
        for line in (tmp_path / "etc/group").read_text(encoding="utf-8").splitlines()
        if line.startswith("siro-poller:")
    )
    user = next(
        line.split(":")
        for line in (tmp_path / "etc/passwd").read_text(encoding="utf-8").splitlines()
        if line.startswith("siro-poller:")
    )
    assert user[3] == group[2]  # its own group
    assert user[5:] == ["/var/lib/siro-poller", "/usr/sbin/nologin"]
    for path, expected_mode, expected_gid in (
        (config_dir, 0o750, int(group[2])),
        (config, 0o640, int(group[2])),
        (config_dir / "credentials", 0o700, 0),
    ):
        assert (mode(path), path.stat().st_uid, path.stat().st_gid) == (
            expected_mode,
            0,
            expected_gid,
        ), path


def test_a_credential_given_again_replaces_its_line_and_plain_is_the_fallback(
    tmp_path: Path,
) -> None:
    (tmp_path / "etc/siro-poller/credentials").mkdir(parents=True)
    key_file = tmp_path / "host.secret"
    plain = install("--root", str(tmp_path), "--plain", "credential", "provider.token", stdin="one")
    assert plain.returncode == 0, plain.stderr
    stored = tmp_path / "etc/siro-poller/credentials/provider.token"
    assert stored.read_text(encoding="utf-8") == "one"
    assert mode(stored) == 0o600
    install("--root", str(tmp_path), "credential", "siro.api_token", stdin="two", key_file=key_file)
    again = install(
        "--root", str(tmp_path), "credential", "provider.token", stdin="three", key_file=key_file
    )
    assert again.returncode == 0, again.stderr
    assert b"three" not in stored.read_bytes()
    assert drop_in_lines(tmp_path) == [
        "[Service]",
        f"LoadCredentialEncrypted=siro.api_token:{CREDENTIALS}/siro.api_token",
        f"LoadCredentialEncrypted=provider.token:{CREDENTIALS}/provider.token",
    ]


@pytest.mark.parametrize(
    ("key", "stdin", "message"),
    [
        ("../passwd", "x", "credential KEY must be a dotted config key"),
        ("api_token", "x", "credential KEY must be a dotted config key"),
        ("siro.api_token", "", "no secret given for siro.api_token on stdin"),
    ],
)
def test_a_bad_credential_is_refused_and_writes_nothing(
    tmp_path: Path, key: str, stdin: str, message: str
) -> None:
    credentials = tmp_path / "etc/siro-poller/credentials"
    credentials.mkdir(parents=True)
    refused = install(
        "--root", str(tmp_path), "credential", key, stdin=stdin, key_file=tmp_path / "host.secret"
    )
    assert refused.returncode == 2
    assert message in refused.stderr
    assert list(credentials.iterdir()) == []
    assert not (tmp_path / "etc/systemd").exists()


def test_a_dry_run_prints_every_step_and_changes_nothing(tmp_path: Path) -> None:
    shown = install("--dry-run")
    assert shown.returncode == 0, shown.stderr
    steps = [line.removeprefix("+ ") for line in shown.stdout.splitlines() if line.startswith("+ ")]
    expected = [
        f"install -m 0644 {REPO}/systemd/siro-poller.sysusers /etc/sysusers.d/siro-poller.conf",
        "systemd-sysusers /etc/sysusers.d/siro-poller.conf",
        "install -d -m 0750 /etc/siro-poller",
        f"install -d -m 0700 {CREDENTIALS}",
        "python3 -m venv /opt/siro-poller",
        f"/opt/siro-poller/bin/pip install --upgrade '{REPO}[postgres]'",
        f"install -m 0640 {REPO}/config.example.toml /etc/siro-poller/config.toml",
        f"install -m 0644 {REPO}/systemd/siro-poller.tmpfiles /etc/tmpfiles.d/siro-poller.conf",
        "systemd-tmpfiles --create /etc/tmpfiles.d/siro-poller.conf",
        "install -m 0644 "
        f"{REPO}/systemd/siro-poller.service /etc/systemd/system/siro-poller.service",
        "systemctl daemon-reload",
    ]
    assert [step for step in steps if step in expected] == expected

    credential = install("--dry-run", "credential", "siro.client_secret")
    assert credential.returncode == 0, credential.stderr
    assert (
        f"+ systemd-creds encrypt --name=siro.client_secret - {CREDENTIALS}/siro.client_secret.new"
        in credential.stdout
    )
    line = f"LoadCredentialEncrypted=siro.client_secret:{CREDENTIALS}/siro.client_secret"
    assert line in credential.stdout

    into_root = install("--dry-run", "--root", str(tmp_path))
    assert into_root.returncode == 0, into_root.stderr
    assert list(tmp_path.iterdir()) == []
    # A secret encrypted on the build machine would not open on the target: given there.
    assert "on the target, give each secret" in into_root.stdout
    assert "--root" not in into_root.stdout.split("Next:")[1]


def test_one_credential_path_throughout() -> None:
    """The unit, the README, the install script and `siro create-app` agree on where secrets go."""
    texts = {
        path: (REPO / path).read_text(encoding="utf-8")
        for path in (
            "README.md",
            "systemd/siro-poller.service",
            "systemd/install.sh",
            "config.example.toml",
            "poller/config.py",
            "poller/cli/siro.py",
        )
    }
    for path, text in texts.items():
        for named in re.findall(r"/etc/siro-poller/[\w./<>-]*", text):
            assert named in ("/etc/siro-poller/config.toml", CREDENTIALS) or named.startswith(
                CREDENTIALS + "/"
            ), f"{path} names {named}"
    assert "systemd/install.sh credential siro.client_secret" in SHOWN_ONCE_WARNING
    assert f"{CREDENTIALS}/siro.client_secret" in SHOWN_ONCE_WARNING


def test_the_unit_scores_at_most_1_2_in_systemd_analyze_security() -> None:
    result = subprocess.run(
        [systemd_tool("systemd-analyze"), "security", "--offline=true", str(UNIT)],
        capture_output=True,
        text=True,
        check=False,
    )
    found = re.search(r"Overall exposure level for siro-poller.service: (\d+\.\d+)", result.stdout)
    assert found, result.stdout + result.stderr
    assert float(found.group(1)) <= 1.2


def test_the_unit_denies_link_local_and_metadata_addresses_and_caps_resources() -> None:
    settings: dict[str, list[str]] = {}
    for line in UNIT.read_text(encoding="utf-8").splitlines():
        if "=" in line and not line.startswith("#"):
            name, value = line.split("=", 1)
            settings.setdefault(name, []).append(value)
    denied = " ".join(settings["IPAddressDeny"]).split()
    assert {"169.254.0.0/16", "fe80::/10", "100.100.100.200", "fd00:ec2::254"} <= set(denied)
    # An allow list would win over the deny list; "any" would cut the poller off the internet.
    assert "IPAddressAllow" not in settings
    assert "any" not in denied
    assert settings["MemoryMax"] == ["1G"]
    assert settings["TasksMax"] == ["512"]
    assert settings["User"] == ["siro-poller"]
