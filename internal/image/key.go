package image

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"hash"
	"slices"
)

// builderVersion is hashed into every key. Bump it when a change to this
// package changes what it produces, so existing artifacts are rebuilt.
const builderVersion = "1"

// keyLen is how many hex digits of the SHA-256 a key keeps: 128 bits is
// plenty to tell builds apart and keeps paths readable.
const keyLen = 32

// keyer hashes named fields unambiguously: each field is written with its
// length, so ("ab","c") and ("a","bc") differ.
type keyer struct{ h hash.Hash }

func newKeyer(kind string) *keyer {
	k := &keyer{h: sha256.New()}
	k.add("kind", kind)
	k.add("builder", builderVersion)
	return k
}

func (k *keyer) add(name, value string) { k.addBytes(name, []byte(value)) }

func (k *keyer) addBytes(name string, value []byte) {
	var n [8]byte
	for _, b := range [][]byte{[]byte(name), value} {
		binary.BigEndian.PutUint64(n[:], uint64(len(b)))
		k.h.Write(n[:])
		k.h.Write(b)
	}
}

func (k *keyer) addList(name string, values []string) {
	k.add(name+".len", string(binary.BigEndian.AppendUint64(nil, uint64(len(values)))))
	for _, v := range values {
		k.add(name, v)
	}
}

func (k *keyer) sum() string { return hex.EncodeToString(k.h.Sum(nil))[:keyLen] }

// kernelInputs is everything the kernel depends on.
type kernelInputs struct {
	SourceVersion string // Debian version of linux-source-6.1
	Fragment      []byte // kernel.config
}

func (in kernelInputs) key() string {
	k := newKeyer("kernel")
	k.add("source", in.SourceVersion)
	k.addBytes("fragment", in.Fragment)
	return k.sum()
}

// packageInputs is everything the mmdebstrap tarball depends on.
type packageInputs struct {
	Suite    string
	Variant  string
	Sources  []string
	Packages []string
}

// key ignores the order of packages and duplicates: mmdebstrap does too.
func (in packageInputs) key() string {
	pkgs := slices.Clone(in.Packages)
	slices.Sort(pkgs)
	pkgs = slices.Compact(pkgs)
	k := newKeyer("packages")
	k.add("suite", in.Suite)
	k.add("variant", in.Variant)
	k.addList("sources", in.Sources)
	k.addList("packages", pkgs)
	return k.sum()
}

// rootfsInputs is everything a base template's rootfs.ext4 depends on.
type rootfsInputs struct {
	Packages   packageInputs
	EnvdSHA256 string
	Files      []file
	MinSize    int64
}

func (in rootfsInputs) key() string {
	k := newKeyer("rootfs")
	k.add("packages", in.Packages.key())
	k.add("envd", in.EnvdSHA256)
	k.add("files.len", string(binary.BigEndian.AppendUint64(nil, uint64(len(in.Files)))))
	for _, f := range in.Files {
		k.add("file.path", f.Path)
		k.add("file.mode", f.Mode.String())
		k.add("file.data", f.Data)
	}
	k.add("minsize", string(binary.BigEndian.AppendUint64(nil, uint64(in.MinSize))))
	return k.sum()
}

// baseKey names one base template as a whole: its root file system and the
// kernel it boots. Anything derived from a base (snapshots, disks backed by
// its rootfs.ext4) should record it and treat a different key as stale.
func baseKey(rootfsKey, kernelKey string) string {
	k := newKeyer("base")
	k.add("rootfs", rootfsKey)
	k.add("kernel", kernelKey)
	return k.sum()
}
