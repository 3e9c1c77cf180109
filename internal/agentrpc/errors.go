package agentrpc

import (
	"context"
	"errors"

	"connectrpc.com/connect"

	"github.com/wrennhq/wrenn"
)

// codeKey is the error metadata in which the agent names the domain code
// of an error it answers with. Only an error carrying it is the agent's
// answer; connect's own codes also describe transport failures (a message
// over the size limit is ResourceExhausted, a bad request InvalidArgument),
// which must never reach a client as if the agent had refused the request.
const codeKey = "Wrenn-Error-Code"

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
	case wrenn.ETooLarge, wrenn.EHostFull, wrenn.EQuotaExceeded:
		code = connect.CodeResourceExhausted
	case wrenn.EUnauthorized:
		code = connect.CodeUnauthenticated
	}
	ce := connect.NewError(code, errors.New(e.Message))
	ce.Meta().Set(codeKey, e.Code)
	return ce
}

// fromConnect turns an RPC error back into a domain error when the agent
// sent it as one, with a code the client can act on; anything else (a
// transport failure, a fault of the agent) stays an ordinary error, which
// the control plane reports as a host agent failure.
func fromConnect(err error) error {
	if err == nil {
		return nil
	}
	ce, ok := errors.AsType[*connect.Error](err)
	if !ok || !connect.IsWireError(ce) {
		return err
	}
	switch code := ce.Meta().Get(codeKey); code {
	case wrenn.EInvalid, wrenn.ENotFound, wrenn.EConflict, wrenn.ETooLarge, wrenn.EHostFull, wrenn.EQuotaExceeded:
		return &wrenn.Error{Code: code, Message: ce.Message()}
	}
	return err
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
