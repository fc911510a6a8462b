#!/bin/sh
# Start coturn with turn/turnserver.conf as shipped (mounted read-only at TURN_CONFIG),
# its placeholders filled in from the environment into a copy only this user can read:
#   TURN_SECRET           static-auth-secret (VIDEOASSIST_TURN_SECRET of the nodes)
#   TURN_REALM            realm: the TURN server's DNS name
#   TURN_TLS_PORT         TURN over TLS (default 5349: nginx has 443 on this machine)
#   TURN_EXTERNAL_IP      external-ip, behind a 1:1 NAT (optional)
#   TURN_ALLOWED_PEER_IP  allowed-peer-ip, the media server's one address (optional)
# Each placeholder line must be found as shipped, or nothing starts. Arguments go to
# turnserver. tests/test_compose.py runs this script with Debian's turnserver.
set -eu
: "${TURN_SECRET:?TURN_SECRET is not set}" "${TURN_REALM:?TURN_REALM is not set}"
config=${TURN_CONFIG:-/etc/coturn/turnserver.conf}
runtime=${TURN_RUNTIME_CONFIG:-/tmp/turnserver.conf}
export TURN_TLS_PORT="${TURN_TLS_PORT:-5349}"
umask 077
awk '
    $0 == "static-auth-secret=CHANGE_ME" {
        print "static-auth-secret=" ENVIRON["TURN_SECRET"]; filled++; next }
    $0 == "realm=turn.example.com" { print "realm=" ENVIRON["TURN_REALM"]; filled++; next }
    $0 == "tls-listening-port=443" {
        print "tls-listening-port=" ENVIRON["TURN_TLS_PORT"]; filled++; next }
    $0 == "#external-ip=203.0.113.10/10.0.0.4" && ENVIRON["TURN_EXTERNAL_IP"] != "" {
        print "external-ip=" ENVIRON["TURN_EXTERNAL_IP"]; next }
    $0 == "#allowed-peer-ip=MEDIA_SERVER_IP" && ENVIRON["TURN_ALLOWED_PEER_IP"] != "" {
        print "allowed-peer-ip=" ENVIRON["TURN_ALLOWED_PEER_IP"]; next }
    { print }
    END {
        if (filled != 3) {
            print "coturn-start: " FILENAME " is not turn/turnserver.conf as shipped" > "/dev/stderr"
            exit 1
        }
    }
' "$config" > "$runtime"
exec turnserver -c "$runtime" --pidfile="${TURN_PIDFILE:-/tmp/turnserver.pid}" "$@"
