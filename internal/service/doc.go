// Package service installs stillpoint's daemon as a system service (a
// systemd unit, a launchd daemon, a Windows service) and gives the running
// daemon what its service manager expects of it: readiness and watchdog
// notifications (sd_notify) and a lock that keeps the machine from sleeping
// while a run is in progress.
//
// The unit and plist texts are built from one Config so that `service
// install`, `service unit` and the release packaging write the same files.
// Commands that change the system (systemctl, launchctl) go through a Runner,
// so that tests see the sequence without running it.
package service
