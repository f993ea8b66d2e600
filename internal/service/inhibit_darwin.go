package service

// SleepInhibitor keeps a Mac from idle and system sleep with caffeinate.
func SleepInhibitor() Inhibitor {
	return commandInhibitor{argv: func(string) []string {
		return []string{"caffeinate", "-i", "-s", "cat"}
	}}
}
