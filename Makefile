# husk: `make run` sets up this machine, builds and runs the daemon in the
# foreground; `make test` sets up, builds and runs every test.

GO        ?= $(shell command -v go 2>/dev/null || echo /usr/local/go/bin/go)
VERSION   ?= 0.1.0-dev
BIN       := bin
export PATH := $(dir $(GO)):$(PATH)
export CGO_ENABLED := 1

# Debian packages the build and the tests need. containerd (which pulls
# runc) is the comparison runtime of the CLI, bench and pull-bench tests;
# crun and runc are RuntimeClass handlers (runtimes.crun, runtimes.runc).
# patch, bzip2 and xz-utils build the node e2e busybox from Debian's source
# (integration/testenv/busybox_source.go). criu is what the checkpoint
# RPCs check for (`criu check`), and name when it cannot work here.
# debootstrap makes the Debian root of the systemd node TestSystemdNode runs
# husk.service in (integration/testenv/sysnode.go).
APT_PKGS := gcc make musl-tools libseccomp-dev containernetworking-plugins \
            docker-registry iptables iproute2 procps util-linux ca-certificates \
            containerd crun patch bzip2 xz-utils criu debootstrap

# husk-oci embeds libcontainer and is what libcontainer re-executes as the
# container init: built static, so the libseccomp it runs with is the one it
# was built against.
OCI_TAGS    := seccomp netgo osusergo
OCI_LDFLAGS := -s -w -linkmode external -extldflags "-static"
LDFLAGS     := -s -w -X main.version=$(VERSION)
# NRI without its WASM plugin host: github.com/containerd/nri would start a
# wazero runtime in every daemon for plugins no node here runs; external
# (socket) and pre-installed (plugin_path) plugins work the same.
HUSK_TAGS   := nri_no_wasm
# husk-shim lives as long as its pod: static and without cgo, so no libc is
# mapped and its pages are shared by every shim on the node.

.PHONY: all deps build tools run test unit integration bench bench-pull bench-compare install critest critest-strict clean help lint

# Builds husk, husk-shim and husk-oci into bin/ (as make build).
all: build

# Lists the targets, each with the first sentence of the comment above it.
help:
	@awk '/^$$/ { c = "" } /^# / { c = c " " substr($$0, 3) } \
		/^[a-z][a-z0-9-]*:/ && c != "" { split($$0, t, ":"); sub(/^ /, "", c); sub(/\. .*/, ".", c); \
			printf "  %-16s %s\n", t[1], c; c = "" }' $(firstword $(MAKEFILE_LIST))

# Installs the Debian packages the build and the tests need (as root).
deps:
	@missing=$$(for p in $(APT_PKGS); do dpkg-query -W -f='$${Status}\n' $$p 2>/dev/null | grep -q 'install ok installed' || echo $$p; done); \
	if [ -n "$$missing" ]; then \
		echo "installing: $$missing"; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $$missing; \
		case " $$(echo $$missing) " in *" containerd "*) \
			echo "containerd is for the comparison tests, which start their own: disabling the system service just installed"; \
			systemctl disable --now containerd.service >/dev/null 2>&1 || true;; \
		esac; \
	fi

# The built-in pause, static with musl. make lint and make unit need it
# before any apt step of theirs: a machine without musl-gcc gets deps here.
pause/pause.bin: pause/c/pause.c
	@command -v musl-gcc >/dev/null || $(MAKE) deps
	musl-gcc -static -Os -s -o $@ $<

# Builds husk, husk-shim and husk-oci into bin/.
build: deps pause/pause.bin
	$(GO) build -trimpath -tags '$(HUSK_TAGS)' -ldflags '$(LDFLAGS)' -o $(BIN)/husk ./cmd/runtime
	CGO_ENABLED=0 $(GO) build -trimpath -tags 'netgo osusergo' -ldflags '-s -w' -o $(BIN)/husk-shim ./cmd/shim
	$(GO) build -trimpath -tags '$(OCI_TAGS)' -ldflags '$(OCI_LDFLAGS)' -o $(BIN)/husk-oci ./cmd/oci

# crictl and critest, pinned by the tools module (tools/go.mod). The
# checksum database is not asked about cri-tools: the proxy refuses its
# version list, and go.sum pins it anyway.
CRITOOLS_VERSION := 1.37.0
CRITOOLS_LDFLAGS := -X sigs.k8s.io/cri-tools/pkg/version.Version=$(CRITOOLS_VERSION)
tools:
	cd tools && GONOSUMDB=sigs.k8s.io/cri-tools $(GO) build -ldflags '$(CRITOOLS_LDFLAGS)' -o ../$(BIN)/crictl sigs.k8s.io/cri-tools/cmd/crictl
	cd tools && GONOSUMDB=sigs.k8s.io/cri-tools $(GO) test -c -ldflags '$(CRITOOLS_LDFLAGS)' -o ../$(BIN)/critest sigs.k8s.io/cri-tools/cmd/critest

# Runs the daemon with the embedded defaults. Ctrl-C stops the daemon; the
# pods keep running.
run: build
	$(BIN)/husk daemon

# gofmt, vet, every unit test and a short fuzz of each target. It needs
# Go and musl-gcc only, and no root: tests of what needs root (mounts,
# namespaces) skip without it, and make test runs them as root. kubelet
# first: its module (tools/kubelet) pins the k8s.io/kubernetes source the
# node e2e image tests build agnhost from, offline.
unit: pause/pause.bin kubelet
	@unformatted=$$($(dir $(GO))gofmt -l $$(git ls-files '*.go')); \
	if [ -n "$$unformatted" ]; then echo "not gofmt'd:"; echo "$$unformatted"; exit 1; fi
	$(GO) vet ./...
	$(GO) test -count=1 $$($(GO) list ./... | grep -v /integration$$)
	$(MAKE) fuzz FUZZTIME=3000x

# Fuzzes each target for FUZZTIME. The targets are every func FuzzX in a
# _test.go outside integration/; make test runs each for 3000 inputs (a few
# seconds): a time bound there ended now and then with a worker mid-input,
# which go test reports as a failure ("context deadline exceeded"). The
# seeds are the targets' f.Add calls; a crash the fuzzer finds is written to
# the package's testdata/fuzz/FuzzX, which plain `go test` then replays:
# commit it with the fix.
#
# Minimizing each new input is bounded by FUZZMINIMIZE runs: go test's
# default (60 s for every input that adds coverage) spent the whole of a
# short run minimizing FuzzUnpackLayer's first finds, so a bounded run ended
# with a worker still busy ("context deadline exceeded"). A crasher
# minimized in 20 runs is still written and replayed. FUZZ_SKIP names
# targets to leave out.
FUZZTIME ?= 1m
FUZZMINIMIZE ?= 20x
FUZZ_SKIP ?=
.PHONY: fuzz
fuzz:
	@for f in $$(git ls-files '*_test.go' | grep -v '^integration/' | xargs grep -l '^func Fuzz'); do \
		for n in $$(grep -o '^func Fuzz[A-Za-z0-9_]*' $$f | cut -d' ' -f2); do \
			case " $(FUZZ_SKIP) " in *" $$n "*) echo "fuzz: $$n skipped (FUZZ_SKIP)"; continue;; esac; \
			echo "fuzz: ./$$(dirname $$f) $$n for $(FUZZTIME)"; \
			$(GO) test -run '^$$' -fuzz "^$$n$$" -fuzztime $(FUZZTIME) -fuzzminimizetime $(FUZZMINIMIZE) ./$$(dirname $$f) || exit 1; \
		done; \
	done

# The integration tests (integration/): real daemons, pods, CNI, registry.
integration: build tools kubelet
	$(GO) test -count=1 -v -timeout 30m ./integration/

# Static checks beyond vet. golangci-lint with .golangci.yml: staticcheck,
# revive's doc-comment rules, errorlint, sloglint, misspell, unused, and
# depguard holding the import boundaries DESIGN.md states (libcontainer only
# in oci and cmd/oci; no gRPC or k8s.io in the shim; no k8s.io/api in
# daemon, cri or sandbox). Pinned as a Go tool in its own module
# (tools/lint/go.mod), so its dependencies stay out of husk's; built once
# into bin/ (about 4 minutes cold), rebuilt when the pin changes.
lint: $(BIN)/golangci-lint pause/pause.bin
	$(BIN)/golangci-lint run ./...

$(BIN)/golangci-lint: tools/lint/go.mod tools/lint/go.sum
	cd tools/lint && $(GO) build -o ../../$@ github.com/golangci/golangci-lint/v2/cmd/golangci-lint

# Pod start latency (warm and cold) and per-pod memory; figures, no asserts.
# Pod start first: the 500-container stats benchmark leaves the kernel
# busy reclaiming for a while, which would slow what runs after it.
bench: build
	$(GO) test -run '^$$' -bench 'PodStart|PodMemory' -benchtime 30x -timeout 30m -v ./integration/ | grep -E '^(Benchmark|\s+time=.*steps)'
	$(GO) test -run '^$$' -bench 'ListContainerStats' -benchtime 30x -timeout 30m -v ./integration/ | grep -E '^Benchmark'

# Pull speed beside containerd 2.4's and 1.6's. Pulls a 216 MiB, six-layer
# image from a local registry through husk and both containerds,
# interleaved: whole-pull, download and unpack MB/s apart. Not in `make test`; figures, no asserts. The image
# is built once into the testenv cache (~/.cache/husk-testenv/pullbench-*).
bench-pull: build containerd2
	$(GO) test -run '^$$' -bench 'Pull200MB' -benchtime 3x -timeout 30m -v ./integration/ | grep -E '^(Benchmark|\s+bench_pull_test)'

# Builds the newest containerd, the benchmarks' peer. containerd v2.4.2
# (its daemon and runc shim) and runc v1.5.3 with seccomp, from the module
# proxy, pinned by tools/containerd/go.mod, into bin/containerd2/. Built as
# upstream's Makefile builds them (the shim static without cgo, runc with
# cgo and libseccomp), less btrfs, which nothing here uses. About 6 minutes
# cold. The testenv runs it isolated (testenv.ContainerdOptions.BinDir).
CONTAINERD2_VERSION := v2.4.2
CONTAINERD2_LDFLAGS := -s -w -X github.com/containerd/containerd/v2/version.Version=$(CONTAINERD2_VERSION)
.PHONY: containerd2
containerd2: deps
	cd tools/containerd && $(GO) build -trimpath -tags 'urfave_cli_no_docs no_btrfs' -ldflags '$(CONTAINERD2_LDFLAGS)' -o ../../$(BIN)/containerd2/containerd github.com/containerd/containerd/v2/cmd/containerd
	cd tools/containerd && CGO_ENABLED=0 $(GO) build -trimpath -tags 'urfave_cli_no_docs no_grpc' -ldflags '$(CONTAINERD2_LDFLAGS)' -o ../../$(BIN)/containerd2/containerd-shim-runc-v2 github.com/containerd/containerd/v2/cmd/containerd-shim-runc-v2
	cd tools/containerd && CGO_ENABLED=1 $(GO) build -trimpath -tags 'seccomp urfave_cli_no_docs' -ldflags '-s -w -X main.version=1.5.3' -o ../../$(BIN)/containerd2/runc github.com/opencontainers/runc

# husk beside containerd 2.4 and containerd 1.6 in one run. `husk bench`
# against the three, each isolated on the test registry's images
# (integration BenchmarkCompare). HUSK_BENCH_RUNTIMES (comma-separated:
# husk, containerd2, containerd) runs only some. HUSK_BENCH_ARGS replaces its workload
# flags; the default is 20 sequential pods, 48 at concurrency 8, and 500
# pods present for the list and stats calls, memory read at 100 and 500.
# Not in `make test`; figures, no asserts.
bench-compare: build containerd2
	$(GO) test -run '^$$' -bench '^BenchmarkCompare$$' -benchtime 1x -timeout 90m -v ./integration/

# critest, the CRI conformance suite. cri-tools' suite against an isolated
# husk, with every image served from a local registry through husk's mirror
# config.
critest: build tools
	$(GO) run ./integration/critest --bin $(BIN)

# critest that fails on a failed spec. A spec that fails once and passes
# on its retry is reported as FLAKY in the summary rather than failing CI;
# one that fails twice fails it.
critest-strict: build tools
	$(GO) run ./integration/critest --bin $(BIN) --strict -- --ginkgo.flake-attempts=2

# Every check: lint, unit, integration, critest and the node conformance
# subset. The last two are part of every test run, so conformance cannot
# regress silently; --strict fails the run on any failed spec. deps comes
# first: unit tests that need the CNI plugins or iptables skip without
# them, and on a fresh machine they would.
test: deps lint unit integration critest-strict node-e2e-subset

# Installs the binaries in /usr/local/bin, a default /etc/husk/config.toml
# and, where systemd is, husk.service (enable it with `systemctl enable
# --now husk`).
install: build
	install -m 0755 $(BIN)/husk $(BIN)/husk-shim $(BIN)/husk-oci /usr/local/bin/
	@mkdir -p /etc/husk
	@[ -f /etc/husk/config.toml ] || $(BIN)/husk config default > /etc/husk/config.toml
	@if [ -d /etc/systemd/system ]; then \
		install -m 0644 dist/systemd/husk.service /etc/systemd/system/husk.service; \
		[ -d /run/systemd/system ] && systemctl daemon-reload || true; \
	fi

# Removes what the build made.
clean:
	rm -rf $(BIN) pause/pause.bin

# Builds upstream kubelet (TestKubelet, the node e2e runs). From
# k8s.io/kubernetes through the module proxy, pinned by its own module
# (tools/kubelet/go.mod, which maps every k8s.io staging module to its
# matching release).
KUBELET_VERSION := v1.37.2
KUBELET_LDFLAGS := -X k8s.io/component-base/version.gitVersion=$(KUBELET_VERSION) \
                   -X k8s.io/component-base/version.gitMajor=1 \
                   -X k8s.io/component-base/version.gitMinor=37
#
# The same pin's agnhost (built by the node e2e image tests, which make unit
# runs offline) needs modules kubelet does not: listing its deps fetches
# them. Without it a fresh machine failed make unit ("module lookup
# disabled by GOPROXY=off" for sctp, go-oidc, go-jose).
.PHONY: kubelet
kubelet:
	cd tools/kubelet && $(GO) build -ldflags '$(KUBELET_LDFLAGS)' -o ../../$(BIN)/kubelet k8s.io/kubernetes/cmd/kubelet
	cd tools/kubelet && $(GO) list -deps k8s.io/kubernetes/test/images/agnhost >/dev/null

# Builds the node e2e suite and ginkgo. The Kubernetes node e2e suite
# (test/e2e_node) comes from the same pin as kubelet; its [NodeConformance]
# specs run against an isolated husk with every image served locally
# (integration/nodee2e; skips with reasons in
# integration/nodee2e/skips.txt). Heavy: make test runs a subset.
.PHONY: node-e2e-bin node-e2e
node-e2e-bin: kubelet
	cd tools/kubelet && $(GO) test -c -o ../../$(BIN)/e2e_node.test k8s.io/kubernetes/test/e2e_node
	cd tools/kubelet && $(GO) build -o ../../$(BIN)/ginkgo github.com/onsi/ginkgo/v2/ginkgo

# The node conformance run itself (about 45 minutes).
node-e2e: build node-e2e-bin
	$(GO) run ./integration/nodee2e --bin $(BIN)

# The node conformance subset make test runs. The whole run takes about 45
# minutes here (four processes; its probe, lifecycle-hook and
# restartable-init specs wait out real timeouts), more than CI can spend, so
# make test runs these fast specs, one or more from each area husk
# implements itself: container status and termination messages, security
# contexts (users, groups, privileges, read-only rootfs), env from
# ConfigMaps, Secrets and the downward API (bad-named keys too), sysctls,
# host names, pod IPs, RuntimeClass (test-handler), recursive read-only
# mounts, emptyDir and log paths. About 90 specs, 3 minutes.
NODE_E2E_SUBSET := (Container Runtime blackbox test|Security Context|\[sig-node\] ConfigMap|\[sig-node\] Secrets|\[sig-node\] Downward API|Sysctls|Hostname of|Override hostname|Pod IPs|Pod Host|RuntimeClass|Kubelet when scheduling|Mount recursive|EmptyDir volumes|ContainerLogPath).*\[NodeConformance\]
.PHONY: node-e2e-subset
node-e2e-subset: build node-e2e-bin
	$(GO) run ./integration/nodee2e --bin $(BIN) --procs 2 --strict --focus '$(NODE_E2E_SUBSET)'

# Regenerates husk's own gRPC API (api/v1). The generated .pb.go files are
# committed, so building and testing need no protoc; run this after changing
# a .proto. Needs protoc (Debian protobuf-compiler); the plugins are pinned
# to match google.golang.org/protobuf and grpc in go.mod and installed under
# bin/.
PROTOC_GEN_GO_VERSION      := v1.36.12
PROTOC_GEN_GO_GRPC_VERSION := v1.6.2
PROTO_PLUGINS := $(CURDIR)/$(BIN)/protoc-plugins
.PHONY: proto
proto:
	@command -v protoc >/dev/null || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends protobuf-compiler; }
	GOBIN=$(PROTO_PLUGINS) $(GO) install google.golang.org/protobuf/cmd/protoc-gen-go@$(PROTOC_GEN_GO_VERSION)
	GOBIN=$(PROTO_PLUGINS) $(GO) install google.golang.org/grpc/cmd/protoc-gen-go-grpc@$(PROTOC_GEN_GO_GRPC_VERSION)
	PATH=$(PROTO_PLUGINS):$$PATH protoc -I api/v1 \
		--go_out=api/v1 --go_opt=paths=source_relative \
		--go-grpc_out=api/v1 --go-grpc_opt=paths=source_relative \
		api/v1/husk.proto
