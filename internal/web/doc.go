// Package web serves the daemon's status pages, its JSON API (docs/api.md)
// and its Prometheus metrics.
//
// The daemon hands New a [Source]: its jobs with their schedule, last and
// next run and retry queue, its runs with the files they flagged, a way to
// start a run, and the repositories whose snapshots are browsed. Snapshots,
// directories and downloads are read from those repositories directly, the
// way `stillpoint ls` and `dump` read them. This package imports nothing of
// the daemon: the daemon imports it.
//
// Pages are rendered on the server with html/template from embedded
// templates and one embedded stylesheet; they need no JavaScript. The only
// form, "Run now", carries a token bound to a cookie, and every POST is
// refused when the browser says another site sent it.
//
// [Metrics] is a Prometheus registry of the daemon's own; the daemon calls
// RunStarted and RunFinished around each run and passes it in
// Options.Metrics to serve it on /metrics.
//
// [Listen] and [CheckOptions] keep the rules of the address: loopback unless
// a token or basic auth is set, TLS when a certificate is given.
package web
