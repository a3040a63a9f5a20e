package main

import (
	"context"
	"errors"

	"github.com/mailhook/mailhook/config"
	"github.com/mailhook/mailhook/store"
)

func openS3(ctx context.Context, cfg *config.Config, u config.StoreURL) (store.Store, error) {
	return nil, usageError{errors.New("MAILHOOK_STORE: s3:// stores are not supported by this build yet")}
}
