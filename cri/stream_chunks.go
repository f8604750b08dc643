package cri

import "google.golang.org/protobuf/proto"

// streamChunkBytes bounds one message of a Stream* list RPC (KEP-5825),
// well under gRPC's default 16 MiB receive limit that the streaming lists
// exist to get around.
const streamChunkBytes = 1 << 20

// sendChunks sends items in lists of at least one, each item once, each
// list under streamChunkBytes unless a single item is larger. No items, no
// message: the caller's return then closes the stream with EOF, as the
// contract asks once everything is sent.
func sendChunks[T proto.Message](items []T, send func([]T) error) error {
	start, size := 0, 0
	for i, it := range items {
		n := proto.Size(it) + 8 // the repeated field's tag and length
		if i > start && size+n > streamChunkBytes {
			if err := send(items[start:i]); err != nil {
				return err
			}
			start, size = i, 0
		}
		size += n
	}
	if start < len(items) {
		return send(items[start:])
	}
	return nil
}
