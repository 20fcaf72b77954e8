package main

import (
	"encoding/binary"
	"fmt"
	"hash/crc32"
	"math"
	"math/rand/v2"
	"strings"
)

// format is a file type whose magic numbers frame the generated content, so that a
// file looks like what its name says to tools that sniff (file, libmagic, xz -l).
type format uint8

const (
	fmtNone format = iota
	fmtELF
	fmtPNG
	fmtSVG
	fmtMO
	fmtPyc
	fmtPython
	fmtXZ
	fmtGzip
	fmtJPEG
	fmtTTF
	fmtGGUF
	fmtBzImage
)

// frame returns what a file of format f, size bytes long, starts and ends with. aux is
// the format's detail: an image's pixel size, a .pyc's source size.
func (f format) frame(aux int32, size int64) (head, tail string) {
	switch f {
	case fmtELF:
		h := make([]byte, 64)
		copy(h, "\x7fELF\x02\x01\x01")
		binary.LittleEndian.PutUint16(h[16:], 3)    // ET_DYN
		binary.LittleEndian.PutUint16(h[18:], 0x3e) // x86-64
		binary.LittleEndian.PutUint32(h[20:], 1)
		return string(h), ""
	case fmtPNG:
		return pngFrame(aux, size)
	case fmtSVG:
		px := max(aux, 16)
		return fmt.Sprintf("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%d\" height=\"%d\" viewBox=\"0 0 %d %d\">\n<desc>", px, px, px, px),
			"</desc>\n</svg>\n"
	case fmtMO:
		h := make([]byte, 28)
		n := uint32(size / 64)
		binary.LittleEndian.PutUint32(h, 0x950412de)
		binary.LittleEndian.PutUint32(h[8:], n)
		binary.LittleEndian.PutUint32(h[12:], 28)
		binary.LittleEndian.PutUint32(h[16:], 28+8*n)
		return string(h), ""
	case fmtPyc:
		h := make([]byte, 16)
		copy(h, "\xf3\x0d\x0d\x0a") // Python 3.13
		binary.LittleEndian.PutUint32(h[8:], uint32(epoch.Unix()))
		binary.LittleEndian.PutUint32(h[12:], uint32(aux))
		return string(h), ""
	case fmtPython:
		return "# SPDX-License-Identifier: MIT\n\"\"\"\n", "\n\"\"\"\n"
	case fmtXZ:
		return "\xfd7zXZ\x00\x00\x04\xe6\xd6\xb4\x46", "\x00\x00\x00\x00\x00\x00\x00\x00\x00\x04YZ"
	case fmtGzip:
		return "\x1f\x8b\x08\x00\x00\x00\x00\x00\x02\x03", "\x00\x00\x00\x00\x00\x00\x00\x00"
	case fmtJPEG:
		return "\xff\xd8\xff\xe0\x00\x10JFIF\x00\x01\x01\x00\x00\x01\x00\x01\x00\x00", "\xff\xd9"
	case fmtTTF:
		// sfnt version 1.0 with 16 tables, and the first table record.
		return "\x00\x01\x00\x00\x00\x10\x01\x00\x00\x04\x00\x00GDEF\x00\x00\x00\x00\x00\x00\x01\x2c\x00\x00\x00\x40", ""
	case fmtGGUF:
		return "GGUF\x03\x00\x00\x00", ""
	case fmtBzImage:
		// The PE stub's "MZ", the boot sector signature and the setup header's magic.
		return "MZ" + strings.Repeat("\x00", 0x1fc) + "\x55\xaa\xeb\x66HdrS", ""
	}
	return "", ""
}

// pngFrame is a PNG signature, an IHDR chunk of a px x px RGBA image and the IDAT
// chunk header whose data the generated content is; the tail ends the image.
func pngFrame(px int32, size int64) (head, tail string) {
	ihdr := make([]byte, 17)
	copy(ihdr, "IHDR")
	binary.BigEndian.PutUint32(ihdr[4:], uint32(px))
	binary.BigEndian.PutUint32(ihdr[8:], uint32(px))
	ihdr[12], ihdr[13] = 8, 6 // 8 bits per channel, RGBA
	h := []byte("\x89PNG\r\n\x1a\n\x00\x00\x00\x0d")
	h = append(h, ihdr...)
	h = binary.BigEndian.AppendUint32(h, crc32.ChecksumIEEE(ihdr))
	tail = "\x00\x00\x00\x00" + "\x00\x00\x00\x00IEND\xaeB`\x82"
	h = binary.BigEndian.AppendUint32(h, uint32(max(size-int64(len(h))-8-int64(len(tail)), 0)))
	return string(append(h, "IDAT"...)), tail
}

func clampSize(v, lo, hi int64) int64 { return min(max(v, lo), hi) }

// logUniform returns a size from lo to hi, uniform on a log scale when skew is 1;
// a larger skew favours the small end (skew 3: most near lo, a few near hi).
func logUniform(r *rand.Rand, lo, hi int64, skew float64) int64 {
	if hi <= lo {
		return lo
	}
	u := math.Pow(r.Float64(), skew)
	return int64(float64(lo) * math.Pow(float64(hi)/float64(lo), u))
}

// longTail returns a size of at least lo and at most hi whose mean is about mean, with
// the long tail of real file sizes (a product of two exponentials).
func longTail(r *rand.Rand, lo, mean, hi int64) int64 {
	return min(lo+int64(float64(max(mean-lo, 0))*r.ExpFloat64()*r.ExpFloat64()), max(hi, lo))
}

// pickWeighted returns an index with probability proportional to its weight.
func pickWeighted(r *rand.Rand, weights []int) int {
	total := 0
	for _, w := range weights {
		total += w
	}
	x := r.IntN(total)
	for i, w := range weights {
		if x < w {
			return i
		}
		x -= w
	}
	return len(weights) - 1
}

// kmodDirs are the directories below usr/lib/modules/VERSION/kernel that hold modules.
const kmodDirs = `drivers/net/ethernet/intel drivers/net/ethernet/realtek drivers/net/ethernet/mellanox/mlx5/core
drivers/net/wireless/intel/iwlwifi drivers/net/wireless/realtek/rtw89 drivers/net/wireless/ath/ath11k
drivers/net/wireless/mediatek/mt76 drivers/gpu/drm/amd/amdgpu drivers/gpu/drm/i915 drivers/gpu/drm/nouveau
drivers/gpu/drm/xe drivers/usb/serial drivers/usb/gadget drivers/media/usb drivers/media/i2c drivers/scsi
drivers/input/misc drivers/input/touchscreen drivers/hid drivers/iio/adc drivers/iio/imu drivers/staging
drivers/infiniband/hw drivers/bluetooth drivers/md drivers/nvme/host drivers/platform/x86 drivers/hwmon
drivers/i2c/busses drivers/spi drivers/pinctrl drivers/mfd drivers/thunderbolt drivers/watchdog
fs/btrfs fs/xfs fs/nfs fs/ext4 fs/fuse fs/smb/client net/netfilter net/ipv6 net/bluetooth net/sched
net/wireless sound/soc/codecs sound/soc/intel sound/pci/hda sound/usb crypto lib arch/x86/kvm`

// fwDir is a firmware directory below usr/lib/firmware and the package that ships it.
type fwDir struct {
	dir, pkg string
	weight   int // share of the firmware files
}

func firmwareDirs() []fwDir {
	return []fwDir{
		{"amdgpu", "amd-gpu-firmware", 14}, {"radeon", "amd-gpu-firmware", 2},
		{"amd-ucode", "amd-ucode-firmware", 1}, {"i915", "intel-gpu-firmware", 5},
		{"xe", "intel-gpu-firmware", 2}, {"intel/vsc", "intel-vsc-firmware", 1},
		{"intel/sof-ipc4", "alsa-sof-firmware", 3}, {"intel/iwlwifi", "iwlwifi-mvm-firmware", 4},
		{"nvidia/ad102/gsp", "nvidia-gpu-firmware", 3}, {"nvidia/ga102/gsp", "nvidia-gpu-firmware", 3},
		{"nvidia/tu102/gsp", "nvidia-gpu-firmware", 2}, {"ath11k/WCN6855/hw2.0", "atheros-firmware", 2},
		{"ath12k/WCN7850/hw2.0", "atheros-firmware", 2}, {"ath10k/QCA6174/hw3.0", "atheros-firmware", 1},
		{"brcm", "brcmfmac-firmware", 2}, {"cirrus", "cirrus-audio-firmware", 2},
		{"mediatek/mt7925", "mt7xxx-firmware", 1}, {"mediatek", "mt7xxx-firmware", 1},
		{"rtl_nic", "realtek-firmware", 1}, {"rtw89", "realtek-firmware", 1}, {"rtl_bt", "realtek-firmware", 1},
		{"qcom", "qcom-firmware", 3}, {"qcom/sm8550", "qcom-firmware", 1},
		{"netronome", "netronome-firmware", 1}, {"qed", "qed-firmware", 1},
		{"liquidio", "liquidio-firmware", 1}, {"mellanox", "mlxsw_spectrum-firmware", 1},
		{"ti-connectivity", "tiwilink-firmware", 1}, {"cxgb4", "linux-firmware", 1}, {"mrvl", "linux-firmware", 1},
	}
}

// iconTheme is an icon theme below usr/share/icons.
type iconTheme struct {
	name     string
	twins    []string // variants (dark, light) that repeat every icon
	pkg      string
	sizes    []int // pixel sizes; 0 is scalable, -1 symbolic
	svg      bool  // SVG in every size, not PNG
	appIcons bool  // applications install their own icons here (hicolor)
	weight   int   // share of the icon sets
}

func iconThemes() []iconTheme {
	return []iconTheme{
		{name: "hicolor", pkg: "hicolor-icon-theme", sizes: []int{16, 22, 24, 32, 48, 64, 128, 256, 512, 0}, appIcons: true, weight: 35},
		{name: "Adwaita", pkg: "adwaita-icon-theme", sizes: []int{16, 22, 24, 32, 48, 64, 96, 0, -1}, weight: 30},
		{name: "breeze", twins: []string{"breeze-dark"}, pkg: "breeze-icon-theme", sizes: []int{16, 22, 24, 32, 48, 64}, svg: true, weight: 20},
		{name: "Papirus", twins: []string{"Papirus-Dark", "Papirus-Light"}, pkg: "papirus-icon-theme", sizes: []int{16, 22, 24, 32, 48, 64}, svg: true, weight: 10},
	}
}

// Languages of usr/share/locale: the popular ones have most catalogs translated.
const (
	popularLangs = `ar bg ca cs da de el en_GB es et eu fi fr gl he hi hr hu id it ja kk ko lt lv nb nl pl pt
pt_BR ro ru sk sl sr sr@latin sv ta th tr uk vi zh_CN zh_TW`
	otherLangs = `aa ab af ak am an as ast av ay az ba be be@latin bem bg_BG bn bn_IN bo br bs ca@valencia ce
ckb co crh cs_CZ csb cv cy de_CH dsb dv dz ee en_AU en_CA eo es_AR es_MX fa ff fo fr_CA fur fy ga gd gn gu
gv ha haw hne hsb ht hy hye ia ie ig ilo io is iu ka kab kg ki km kmr kn kok ks ksh ku kw ky la lb lg li
lij ln lo lu mai mg mhr mi mjw mk ml mn mr ms mt my nah nap nds ne nn no nso oc om or os pa pap pi ps
qu rm rn rw sa sat sc sco sd se sg si sm sn so son sq ss st su sw szl te tg ti tk tl tn to tok ts tt
tw ty ug ur uz uz@cyrillic ve vec wa wo xh yi yo za zh_HK zu`
)
