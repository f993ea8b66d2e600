package backend

import (
	"context"
	"fmt"
	"io"
	"sync"
)

// Mem keeps files in memory, for tests.
type Mem struct {
	mu    sync.RWMutex
	files map[Handle][]byte
}

// NewMem returns an empty in-memory backend.
func NewMem() *Mem { return &Mem{files: map[Handle][]byte{}} }

// Location implements Backend.
func (m *Mem) Location() string { return "memory" }

// Save implements Backend.
func (m *Mem) Save(ctx context.Context, h Handle, data []byte) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if _, ok := m.files[h]; ok {
		return fmt.Errorf("save %s: %w", h, ErrExists)
	}
	m.files[h] = append([]byte(nil), data...)
	return nil
}

// Load implements Backend.
func (m *Mem) Load(ctx context.Context, h Handle, offset, length int64) ([]byte, error) {
	data, err := m.file(ctx, h)
	if err != nil {
		return nil, err
	}
	if length == 0 {
		length = int64(len(data)) - offset
	}
	if offset < 0 || length < 0 || offset+length > int64(len(data)) {
		return nil, fmt.Errorf("load %s: %w", h, io.ErrUnexpectedEOF)
	}
	return append([]byte(nil), data[offset:offset+length]...), nil
}

// LoadInto implements Backend.
func (m *Mem) LoadInto(ctx context.Context, h Handle, offset int64, buf []byte) error {
	data, err := m.file(ctx, h)
	if err != nil {
		return err
	}
	if offset < 0 || offset+int64(len(buf)) > int64(len(data)) {
		return fmt.Errorf("load %s: %w", h, io.ErrUnexpectedEOF)
	}
	copy(buf, data[offset:])
	return nil
}

func (m *Mem) file(ctx context.Context, h Handle) ([]byte, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	m.mu.RLock()
	data, ok := m.files[h]
	m.mu.RUnlock()
	if !ok {
		return nil, fmt.Errorf("load %s: %w", h, ErrNotFound)
	}
	return data, nil
}

// Stat implements Backend.
func (m *Mem) Stat(ctx context.Context, h Handle) (FileInfo, error) {
	m.mu.RLock()
	defer m.mu.RUnlock()
	data, ok := m.files[h]
	if !ok {
		return FileInfo{}, fmt.Errorf("stat %s: %w", h, ErrNotFound)
	}
	return FileInfo{Name: h.Name, Size: int64(len(data))}, nil
}

// List implements Backend.
func (m *Mem) List(ctx context.Context, k Kind, fn func(FileInfo) error) error {
	m.mu.RLock()
	var infos []FileInfo
	for h, d := range m.files {
		if h.Kind == k {
			infos = append(infos, FileInfo{Name: h.Name, Size: int64(len(d))})
		}
	}
	m.mu.RUnlock()
	for _, fi := range infos {
		if err := fn(fi); err != nil {
			return err
		}
	}
	return nil
}

// Remove implements Backend.
func (m *Mem) Remove(ctx context.Context, h Handle) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	delete(m.files, h)
	return nil
}

// Close implements Backend.
func (m *Mem) Close() error { return nil }

// Tamper replaces a file's bytes, for tests that damage a repository.
func (m *Mem) Tamper(h Handle, fn func([]byte) []byte) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if d, ok := m.files[h]; ok {
		m.files[h] = fn(append([]byte(nil), d...))
	}
}
