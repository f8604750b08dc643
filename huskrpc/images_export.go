package huskrpc

import (
	"bufio"

	huskapi "github.com/husk-runtime/husk/api/v1"
	"github.com/husk-runtime/husk/image"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// Export streams an archive of one image. The image package makes every
// check before it writes, so a missing image or blob is the call's status
// with no data; a failure after the first chunk ends the stream with an
// error, and the client must drop what it received.
func (s *Server) Export(req *huskapi.ExportRequest, stream huskapi.Images_ExportServer) error {
	if req.GetRef() == "" {
		return status.Error(codes.InvalidArgument, "Export: ref is required")
	}
	var format image.ArchiveFormat
	switch req.GetFormat() {
	case huskapi.ArchiveFormat_ARCHIVE_FORMAT_UNSPECIFIED, huskapi.ArchiveFormat_ARCHIVE_FORMAT_OCI:
		format = image.FormatOCI
	case huskapi.ArchiveFormat_ARCHIVE_FORMAT_DOCKER:
		format = image.FormatDocker
	default:
		return status.Errorf(codes.InvalidArgument, "Export: unknown format %v", req.GetFormat())
	}
	w := bufio.NewWriterSize(&chunkSender{stream: stream}, chunkSize)
	err := s.Images.Export(stream.Context(), req.GetRef(), format, w)
	if err == nil {
		err = w.Flush()
	}
	if err != nil {
		return toStatus(err)
	}
	return nil
}

// chunkSender sends what is written as ExportChunks of at most chunkSize.
type chunkSender struct {
	stream huskapi.Images_ExportServer
}

func (c *chunkSender) Write(p []byte) (int, error) {
	n := 0
	for len(p) > 0 {
		part := p[:min(len(p), chunkSize)]
		if err := c.stream.Send(&huskapi.ExportChunk{Data: part}); err != nil {
			return n, err
		}
		n += len(part)
		p = p[len(part):]
	}
	return n, nil
}
