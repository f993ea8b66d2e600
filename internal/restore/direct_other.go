//go:build !linux

package restore

// directBuf is where Linux keeps a writer's buffer for direct I/O.
type directBuf struct{}

// directFile is where Linux keeps what the direct writes of a file share.
type directFile struct{}

// writeRun writes the run of n bytes in bs to o at off.
func (directBuf) writeRun(o *outFile, _ *fileState, bs [][]byte, off, _ int64) error {
	return o.writeAt(bs, off)
}

func (directFile) writeEdges(*outFile) error { return nil }
