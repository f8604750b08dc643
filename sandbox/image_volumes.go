package sandbox

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"

	securejoin "github.com/cyphar/filepath-securejoin"
	"github.com/husk-runtime/husk/image"
	"google.golang.org/protobuf/proto"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// volumesDir holds one read-only rootfs per image volume of a container.
func volumesDir(ctrDir string) string { return filepath.Join(ctrDir, "volumes") }

// mountImageVolumes mounts the images that CRI mounts name (Kubernetes
// image volumes) read-only under the container's dir, and returns a copy of
// the config whose mounts point at them, for the spec. The record keeps the
// config as kubelet sent it. CRI: the image must be present (kubelet pulls
// it), and image_sub_path picks a directory inside it. It also returns the
// layer dirs the volumes use, for the container's record, and the image id
// each volume's container path resolved to (ContainerStatus reports it as the
// mount's image_ref, KEP-5365). In a pod with a user
// namespace (idmap not nil) they are idmapped like the rootfs.
func (m *Manager) mountImageVolumes(cfg *runtimeapi.ContainerConfig, ctrDir string, idmap *image.IDMap) (_ *runtimeapi.ContainerConfig, layers []string, ids map[string]string, _ error) {
	var out *runtimeapi.ContainerConfig
	for i, mnt := range cfg.GetMounts() {
		ref := mnt.GetImage().GetImage()
		if ref == "" {
			continue
		}
		if out == nil {
			out = proto.Clone(cfg).(*runtimeapi.ContainerConfig)
		}
		img, err := m.images.Resolve(ref)
		if err != nil {
			return nil, nil, nil, fmt.Errorf("image volume %s: image %q: %w", mnt.GetContainerPath(), ref, err)
		}
		dir := filepath.Join(volumesDir(ctrDir), strconv.Itoa(i))
		if err := os.MkdirAll(dir, 0o700); err != nil {
			return nil, nil, nil, fmt.Errorf("image volume %s: %w", mnt.GetContainerPath(), err)
		}
		root, err := m.images.Mount(img, dir, true, idmap)
		if err != nil {
			return nil, nil, nil, fmt.Errorf("image volume %s: mount %q: %w", mnt.GetContainerPath(), ref, err)
		}
		src := root
		if sub := mnt.GetImageSubPath(); sub != "" {
			// The image decides where its paths lead: securejoin keeps the
			// sub path inside it.
			if src, err = securejoin.SecureJoin(root, sub); err != nil {
				return nil, nil, nil, fmt.Errorf("image volume %s: sub path %q: %w", mnt.GetContainerPath(), sub, err)
			}
			if _, err := os.Stat(src); err != nil {
				return nil, nil, nil, fmt.Errorf("image volume %s: sub path %q is not in image %q: %w", mnt.GetContainerPath(), sub, ref, ErrInvalid)
			}
		}
		out.Mounts[i].HostPath = src
		out.Mounts[i].Readonly = true
		layers = append(layers, img.Layers...)
		if ids == nil {
			ids = map[string]string{}
		}
		ids[mnt.GetContainerPath()] = img.ID
	}
	if out == nil {
		return cfg, nil, nil, nil
	}
	return out, layers, ids, nil
}

// unmountImageVolumes undoes mountImageVolumes; it tolerates a partial or
// repeated run, as removal after a crash needs.
func (m *Manager) unmountImageVolumes(ctrDir string) error {
	ents, err := os.ReadDir(volumesDir(ctrDir))
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("read %s: %w", volumesDir(ctrDir), err)
	}
	for _, e := range ents {
		if err := m.images.Unmount(filepath.Join(volumesDir(ctrDir), e.Name())); err != nil {
			return err
		}
	}
	return nil
}
