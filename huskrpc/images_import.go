package huskrpc

import (
	"errors"
	"io"

	huskapi "github.com/husk-runtime/husk/api/v1"
)

// Import receives an archive in chunks and imports every image in it. The
// bytes come over the socket rather than as a path, so the CLI works from
// any mount namespace; the image package spools them under its root.
func (s *Server) Import(stream huskapi.Images_ImportServer) error {
	imgs, err := s.Images.Import(stream.Context(), &importReader{stream: stream})
	if err != nil {
		return toStatus(err)
	}
	resp := &huskapi.ImportResponse{}
	for _, img := range imgs {
		resp.Images = append(resp.Images, &huskapi.ImportedImage{Id: img.ID, RepoTags: img.RepoTags, RepoDigests: img.RepoDigests})
	}
	return stream.SendAndClose(resp)
}

// importReader reads the archive's bytes from the client's messages; the
// client closing its side is the end of the archive.
type importReader struct {
	stream huskapi.Images_ImportServer
	buf    []byte
}

func (r *importReader) Read(p []byte) (int, error) {
	for len(r.buf) == 0 {
		req, err := r.stream.Recv()
		if errors.Is(err, io.EOF) {
			return 0, io.EOF
		}
		if err != nil {
			return 0, err
		}
		r.buf = req.GetData()
	}
	n := copy(p, r.buf)
	r.buf = r.buf[n:]
	return n, nil
}
