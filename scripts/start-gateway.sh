# Sourced by test scripts: starts the debug cubewalk-server binary on a free loopback port with
# the embedded store, one token and an empty world (no starting terrain: tests place their own
# cubes), stops it on exit, and sets `endpoint`.
# Needs: `server` (the binary), `work` (a scratch folder removed on exit), `token`.
"$server" serve --bind 127.0.0.1:0 --tokens "$token" --seed-radius 0 > "$work/gateway.out" 2> "$work/gateway.err" &
gateway=$!
trap 'kill $gateway 2>/dev/null || true; rm -rf "$work"' EXIT
for _ in $(seq 100); do
  grep -q "listening on" "$work/gateway.out" 2>/dev/null && break
  sleep 0.1
done
endpoint="$(grep -o 'http://[^ ]*' "$work/gateway.out" | head -1)"
[ -n "$endpoint" ] || { echo "gateway did not start"; cat "$work/gateway.err"; exit 1; }
