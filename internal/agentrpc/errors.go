package agentrpc

import (
	"context"
	"errors"

	"connectrpc.com/connect"

	"github.com/wrennhq/wrenn"
)

// toConnect carries a domain error's code across the wire; other errors
// become Internal with their text (the caller logs it, clients never see it).
func toConnect(err error) error {
	if err == nil {
		return nil
	}
	if errors.Is(err, context.Canceled) {
		return connect.NewError(connect.CodeCanceled, err)
	}
	if errors.Is(err, context.DeadlineExceeded) {
		return connect.NewError(connect.CodeDeadlineExceeded, err)
	}
	e, ok := errors.AsType[*wrenn.Error](err)
	if !ok {
		return connect.NewError(connect.CodeInternal, err)
	}
	code := connect.CodeInternal
	switch e.Code {
	case wrenn.EInvalid:
		code = connect.CodeInvalidArgument
	case wrenn.ENotFound:
		code = connect.CodeNotFound
	case wrenn.EConflict:
		code = connect.CodeFailedPrecondition
	case wrenn.ETooLarge:
		code = connect.CodeResourceExhausted
	case wrenn.EUnauthorized:
		code = connect.CodeUnauthenticated
	}
	return connect.NewError(code, errors.New(e.Message))
}

// fromConnect turns an RPC error back into a domain error where the code
// says the client can act on it; anything else stays an ordinary error,
// which the control plane reports as a host agent failure.
func fromConnect(err error) error {
	if err == nil {
		return nil
	}
	var ce *connect.Error
	if !errors.As(err, &ce) {
		return err
	}
	var code string
	switch ce.Code() {
	case connect.CodeInvalidArgument:
		code = wrenn.EInvalid
	case connect.CodeNotFound:
		code = wrenn.ENotFound
	case connect.CodeFailedPrecondition:
		code = wrenn.EConflict
	case connect.CodeResourceExhausted:
		code = wrenn.ETooLarge
	default:
		return err
	}
	return &wrenn.Error{Code: code, Message: ce.Message()}
}

// fromSnapshotConnect is fromConnect for the snapshot RPCs, which an agent
// may not serve: Unimplemented, from an agent that cannot snapshot or one
// that predates the RPCs, becomes a host agent error the client sees.
func fromSnapshotConnect(err error) error {
	if connect.CodeOf(err) == connect.CodeUnimplemented {
		return wrenn.Errorf(wrenn.EHostAgent, "the host agent cannot pause, resume or snapshot sandboxes")
	}
	return fromConnect(err)
}
