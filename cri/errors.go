package cri

import (
	"github.com/husk-runtime/husk/errdefs"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// toStatus turns a core error into a gRPC status with the code its class
// calls for (errdefs' one table, which husk's own API uses too) and the
// core's message, which names what was wrong.
func toStatus(err error) error { return errdefs.ToGRPC(err) }

func invalid(msg string) error { return status.Error(codes.InvalidArgument, msg) }
