package drill

import (
	"context"
	"errors"
)

// The database verifiers start the restored data directory as a server
// that only its user can reach, through a socket in a private directory;
// Windows has no such socket, and a server on TCP with trust
// authentication would open the restored data to every local user.
var errNoPrivateServer = errors.New("runs on Linux and macOS only: it starts the restored copy as a server reachable only through a private socket, which Windows lacks; verify with a command: verifier instead")

func verifyPostgres(context.Context, verifyEnv) (string, error) { return "", errNoPrivateServer }

func verifyMySQL(context.Context, verifyEnv) (string, error) { return "", errNoPrivateServer }
