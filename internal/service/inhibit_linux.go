package service

// SleepInhibitor takes a logind "sleep" lock through systemd-inhibit.
func SleepInhibitor() Inhibitor {
	return commandInhibitor{argv: func(why string) []string {
		return []string{"systemd-inhibit", "--what=sleep:idle", "--who=stillpoint", "--why=" + why, "--mode=block", "cat"}
	}}
}
