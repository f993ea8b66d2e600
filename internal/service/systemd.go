package service

import (
	"fmt"
	"strings"
)

// UnitPath is where Install writes the systemd unit.
const UnitPath = "/etc/systemd/system/" + Name + ".service"

// SystemdUnit is the text of stillpoint.service.
//
// The hardening leaves what a backup needs: reading every file (no
// ProtectHome, no ProtectSystem=strict), creating btrfs snapshots and
// reflink clones where the sources are, the fanotify marks of the hold and
// the inactivity wait (CAP_SYS_ADMIN), freezing writers through their own
// clients (network and unix sockets), and hooks that run the administrator's
// programs. /tmp is not made private: it may be a source, and a private one
// would back up an empty directory.
func SystemdUnit(c Config) (string, error) {
	if err := c.Validate(); err != nil {
		return "", err
	}
	var b strings.Builder
	w := func(format string, args ...any) { fmt.Fprintf(&b, format+"\n", args...) }
	w("[Unit]")
	w("Description=stillpoint backup service (schedules, retries, status page)")
	w("Documentation=man:stillpoint-daemon(1)")
	w("Wants=network-online.target")
	w("After=network-online.target local-fs.target")
	w("")
	w("[Service]")
	w("Type=notify")
	w("NotifyAccess=main")
	w("ExecStart=%s", systemdCommand(append([]string{c.Binary}, c.DaemonArgs()...)))
	w("ExecReload=/bin/kill -HUP $MAINPID")
	// SIGTERM aborts the current run; releasing its snapshot set and running
	// the hooks' on-error take a moment, so the stop waits for them.
	w("KillMode=mixed")
	w("TimeoutStopSec=5min")
	w("Restart=on-failure")
	w("RestartSec=30s")
	w("WatchdogSec=2min")
	w("UMask=0077")
	w("StateDirectory=stillpoint")
	w("StateDirectoryMode=0700")
	w("ConfigurationDirectory=stillpoint")
	w("ConfigurationDirectoryMode=0700")
	w("NoNewPrivileges=yes")
	w("ProtectKernelModules=yes")
	w("ProtectKernelLogs=yes")
	w("ProtectClock=yes")
	w("ProtectHostname=yes")
	w("ProtectControlGroups=yes")
	w("RestrictRealtime=yes")
	w("RestrictSUIDSGID=yes")
	w("LockPersonality=yes")
	w("SystemCallArchitectures=native")
	w("")
	w("[Install]")
	w("WantedBy=multi-user.target")
	return b.String(), nil
}

// systemdCommand quotes a command line as systemd's ExecStart reads it:
// words with spaces, quotes, backslashes or specifiers are double-quoted
// with those escaped; % and $ are doubled so they stay literal.
func systemdCommand(argv []string) string {
	quoted := make([]string, len(argv))
	for i, a := range argv {
		a = strings.NewReplacer("%", "%%", "$", "$$").Replace(a)
		if a != "" && !strings.ContainsAny(a, " \t\"'\\;") {
			quoted[i] = a
			continue
		}
		quoted[i] = `"` + strings.NewReplacer(`\`, `\\`, `"`, `\"`).Replace(a) + `"`
	}
	return strings.Join(quoted, " ")
}
