#!/bin/sh
# Installs wxsurvey from this source tree onto a Debian server, as OPERATIONS.md describes step by
# step: code in /opt/wxsurvey, settings in /etc/wxsurvey, data in /var/lib/wxsurvey, systemd units,
# the nginx site (not enabled) and the Redis settings. Run as root; running it again upgrades the
# code and keeps /etc/wxsurvey's config.toml and wxsurvey.env.
#
#   DESTDIR=/tmp/root deploy/install.sh        install into a scratch root (the test does): no user,
#                                              no systemctl, files only
#   WXSURVEY_VENV=/path/to/venv                link an existing virtualenv instead of building one
set -eu

SRC=$(cd "$(dirname "$0")/.." && pwd)
R=${DESTDIR:-}
say() { printf 'install: %s\n' "$*"; }

install -d -m 0755 "$R/opt/wxsurvey" "$R/etc/wxsurvey" "$R/etc/systemd/system" \
    "$R/etc/nginx/sites-available" "$R/etc/redis" "$R/etc/sysusers.d" "$R/etc/tmpfiles.d" "$R/etc/sysctl.d"

# 1. The code: a clean copy of this tree (no virtualenv, no local data, no git history).
say "code -> /opt/wxsurvey/src"
rm -rf "$R/opt/wxsurvey/src.new"
install -d "$R/opt/wxsurvey/src.new"
tar -C "$SRC" --exclude=./.venv --exclude=./var --exclude=./.git --exclude=./bench-results \
    --exclude=./test-artifacts --exclude='__pycache__' --exclude=./.pytest_cache -cf - . \
    | tar -C "$R/opt/wxsurvey/src.new" -xf -
rm -rf "$R/opt/wxsurvey/src"
mv "$R/opt/wxsurvey/src.new" "$R/opt/wxsurvey/src"

# 2. The virtualenv with wxsurvey and its pinned dependencies.
if [ -n "${WXSURVEY_VENV:-}" ]; then
    say "virtualenv -> $WXSURVEY_VENV (linked)"
    ln -sfn "$WXSURVEY_VENV" "$R/opt/wxsurvey/venv"
else
    say "virtualenv -> /opt/wxsurvey/venv"
    [ -x "$R/opt/wxsurvey/venv/bin/python" ] || python3 -m venv "$R/opt/wxsurvey/venv"
    "$R/opt/wxsurvey/venv/bin/pip" install --quiet --upgrade pip
    "$R/opt/wxsurvey/venv/bin/pip" install --quiet "$R/opt/wxsurvey/src"
    # The services cannot write under /opt (ProtectSystem=strict): compile the bytecode now.
    "$R/opt/wxsurvey/venv/bin/python" -m compileall -q "$R/opt/wxsurvey/venv" >/dev/null || true
fi

# 3. Settings: gunicorn's file is ours and replaced; config.toml and the secrets are the operator's.
install -m 0644 "$SRC/deploy/gunicorn.conf.py" "$R/etc/wxsurvey/gunicorn.conf.py"
if [ ! -e "$R/etc/wxsurvey/config.toml" ]; then
    say "settings -> /etc/wxsurvey/config.toml (edit base_url and the database)"
    install -m 0644 "$SRC/deploy/config.production.toml" "$R/etc/wxsurvey/config.toml"
fi
if [ ! -e "$R/etc/wxsurvey/wxsurvey.env" ]; then
    say "secrets -> /etc/wxsurvey/wxsurvey.env (fill in the WeChat ones)"
    secret() { python3 -c 'import secrets; print(secrets.token_urlsafe(32))'; }
    umask 027
    sed -e "s|^WXSURVEY_APP_SECRET_KEY=.*|WXSURVEY_APP_SECRET_KEY=$(secret)|" \
        -e "s|^WXSURVEY_SURVEY_RESPONDENT_SECRET=.*|WXSURVEY_SURVEY_RESPONDENT_SECRET=$(secret)|" \
        -e "s|^WXSURVEY_APP_METRICS_TOKEN=.*|WXSURVEY_APP_METRICS_TOKEN=$(secret)|" \
        "$SRC/deploy/wxsurvey.env.example" > "$R/etc/wxsurvey/wxsurvey.env"
    umask 022
fi

# 4. systemd: the dedicated user, its directories, the units.
install -m 0644 "$SRC/deploy/systemd/wxsurvey.sysusers.conf" "$R/etc/sysusers.d/wxsurvey.conf"
install -m 0644 "$SRC/deploy/systemd/wxsurvey.tmpfiles.conf" "$R/etc/tmpfiles.d/wxsurvey.conf"
for unit in wxsurvey.target wxsurvey-web.service wxsurvey-worker@.service wxsurvey-scheduler.service \
        wxsurvey-backup.service wxsurvey-backup.timer; do
    install -m 0644 "$SRC/deploy/systemd/$unit" "$R/etc/systemd/system/$unit"
done
say "systemd units -> /etc/systemd/system"

# 5. nginx and Redis: files only; enabling them is a step of its own (certificates, Redis include).
install -m 0644 "$SRC/deploy/nginx-wxsurvey.conf" "$R/etc/nginx/sites-available/wxsurvey.conf"
install -m 0644 "$SRC/deploy/redis.conf" "$R/etc/redis/wxsurvey.conf"
say "nginx site -> /etc/nginx/sites-available/wxsurvey.conf; redis -> /etc/redis/wxsurvey.conf"
install -m 0644 "$SRC/deploy/sysctl-wxsurvey.conf" "$R/etc/sysctl.d/60-wxsurvey.conf"
say "kernel settings -> /etc/sysctl.d/60-wxsurvey.conf (sysctl --system, or at boot)"

if [ -z "$R" ]; then
    systemd-sysusers /etc/sysusers.d/wxsurvey.conf
    systemd-tmpfiles --create /etc/tmpfiles.d/wxsurvey.conf
    sysctl -q -p /etc/sysctl.d/60-wxsurvey.conf || say "(a kernel without tcp_migrate_req: left as it is)"
    chown root:wxsurvey /etc/wxsurvey/wxsurvey.env
    chmod 0640 /etc/wxsurvey/wxsurvey.env
    systemctl daemon-reload
    say "done: next, OPERATIONS.md step 4 (database, wxsurvey init)"
else
    say "done (scratch root $R: no user, no systemctl)"
fi
