// Package fanotify reports the content writes made to whole filesystems,
// with the process that made each one and the path it wrote. The hold and
// the write-inactivity wait both watch for writes this way. Linux only.
package fanotify
