# Sourced by the scripts that open and close many sockets: waits until the
# previous run's TIME_WAIT sockets are gone. With ~20,000 of them left, the
# load generator spends its CPU finding free source ports (a 10,000 storm
# took 6-8 s instead of 2.6 s, client at 113 % CPU).
wait_for_time_wait() {
  while [ "$(ss -Htan state time-wait | wc -l)" -gt 100 ]; do sleep 5; done
}
