package gallery

import "github.com/Azure/azure-sdk-for-go/sdk/storage/azblob"

func azblobClient(cs string) (*azblob.Client, error) {
	return azblob.NewClientFromConnectionString(cs, nil)
}
