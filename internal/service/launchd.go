package service

import (
	"encoding/xml"
	"strings"
)

// PlistPath is where Install writes the launchd daemon on macOS.
const PlistPath = "/Library/LaunchDaemons/" + LaunchdLabel + ".plist"

// LaunchdPlist is the property list of the launchd daemon: started at boot,
// restarted when it exits, its output in /var/log/stillpoint.log.
func LaunchdPlist(c Config) (string, error) {
	if err := c.Validate(); err != nil {
		return "", err
	}
	var b strings.Builder
	b.WriteString(xml.Header)
	b.WriteString(`<!DOCTYPE plist PUBLIC "-//Apple//DTD PLIST 1.0//EN" "http://www.apple.com/DTDs/PropertyList-1.0.dtd">` + "\n")
	b.WriteString("<plist version=\"1.0\">\n<dict>\n")
	key := func(k string) { b.WriteString("\t<key>" + k + "</key>\n") }
	str := func(indent, s string) {
		b.WriteString(indent + "<string>")
		_ = xml.EscapeText(&b, []byte(s))
		b.WriteString("</string>\n")
	}
	key("Label")
	str("\t", LaunchdLabel)
	key("ProgramArguments")
	b.WriteString("\t<array>\n")
	for _, a := range append([]string{c.Binary}, c.DaemonArgs()...) {
		str("\t\t", a)
	}
	b.WriteString("\t</array>\n")
	key("RunAtLoad")
	b.WriteString("\t<true/>\n")
	key("KeepAlive")
	b.WriteString("\t<dict>\n\t\t<key>SuccessfulExit</key>\n\t\t<false/>\n\t</dict>\n")
	// SIGTERM aborts a run; its snapshot is unmounted and deleted before
	// the daemon exits, which takes longer than launchd's 20 s default.
	key("ExitTimeOut")
	b.WriteString("\t<integer>300</integer>\n")
	key("Umask")
	b.WriteString("\t<integer>63</integer>\n")
	key("StandardOutPath")
	str("\t", "/var/log/stillpoint.log")
	key("StandardErrorPath")
	str("\t", "/var/log/stillpoint.log")
	b.WriteString("</dict>\n</plist>\n")
	return b.String(), nil
}
