package statemachine

import "errors"

// ErrPanic is wrapped by the error a machine makes of a panic inside a
// state's Run, an [Event] or an [ErrorHandler]: errors.Is(err, ErrPanic)
// tells a crash from an ordinary failure, and the message carries the panic
// value (when that value is an error it is wrapped too). A Run that ends its
// goroutine with runtime.Goexit (as t.FailNow does) is reported the same way.
var ErrPanic = errors.New("statemachine: panic")

// ErrNilState is the error that ends a machine started with a nil initial
// state.
var ErrNilState = errors.New("statemachine: nil initial state")

// ErrInvalidOption is the error that ends, at Start, a machine given an
// option it cannot use: a WithOnError whose type parameter is not the
// machine's subject type.
var ErrInvalidOption = errors.New("statemachine: invalid option")
