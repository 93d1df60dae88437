package redis_test

import (
	"errors"

	"github.com/wspush/wspush"
)

func errorsIsUnavailable(err error) bool { return errors.Is(err, wspush.ErrUnavailable) }
