// Package winmeta reads and writes the metadata that Windows files have and
// Unix files do not: attributes (read-only, hidden, system, archive, ...),
// the creation time, the security descriptor (owner, group, DACL and, with
// SeSecurityPrivilege, the SACL) and alternate data streams (such as
// Zone.Identifier), and it opens files the way a backup program must: with
// backup semantics, sharing read, write and delete.
//
// What can be checked without Windows is here for every platform: which
// attributes can be set back, the layout of a self-relative security
// descriptor and which of its parts it holds, stream names, and what a
// restore on another platform keeps of Windows metadata (see Foreign). The
// system calls are in the _windows.go files.
package winmeta
