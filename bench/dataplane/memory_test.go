package dataplane

import "slices"

// procMemory is one tunnel process's memory: after setup, before any
// traffic, and at the end of the benchmark (peak is VmHWM).
type procMemory struct {
	Path    string  `json:"path"`
	Role    string  `json:"role"`
	Process string  `json:"process"`
	IdleMB  float64 `json:"idle_rss_mb"`
	EndMB   float64 `json:"end_rss_mb"`
	PeakMB  float64 `json:"peak_rss_mb"`
	Error   string  `json:"error,omitempty"`
}

var processNames = map[string]map[string]string{
	"wggo":   {roleClient: "wireguard-go (client side)", roleServer: "wireguard-go (server side)"},
	"warren": {roleClient: "warren daemon, relay path", roleServer: "warren connector, relay path", roleRelay: "warren coordinator (relay), relay path"},
	"direct": {roleClient: "warren daemon, direct path", roleServer: "warren connector, direct path", roleRelay: "warren coordinator (relay), direct path"},
	"naive":  {roleClient: "wireguard-go (client side), as above", roleServer: "naive connector (tun/netstack + io.Copy)"},
}

type memKey struct{ path, role string }

// readMemories reads the memory of every tunnel process of paths; a nil
// path (the direct one, when missing) is skipped.
func readMemories(paths ...*path) map[memKey]procMemory {
	m := map[memKey]procMemory{}
	for _, p := range paths {
		if p == nil {
			continue
		}
		for role, pid := range p.pids {
			pm := procMemory{Path: p.name, Role: role, Process: processNames[p.name][role]}
			mem, err := readMemory(pid)
			if err != nil {
				pm.Error = err.Error()
			}
			pm.EndMB, pm.PeakMB = mem.RSSMB, mem.PeakMB
			m[memKey{p.name, role}] = pm
		}
	}
	return m
}

func memoryRows(idle, end map[memKey]procMemory) []procMemory {
	var rows []procMemory
	for k, e := range end {
		e.IdleMB = idle[k].EndMB
		if e.Error == "" {
			e.Error = idle[k].Error
		}
		rows = append(rows, e)
	}
	paths := map[string]int{"wggo": 0, "naive": 1, "warren": 2, "direct": 3}
	roles := map[string]int{roleClient: 0, roleServer: 1, roleRelay: 2}
	slices.SortFunc(rows, func(a, b procMemory) int {
		if a.Path != b.Path {
			return paths[a.Path] - paths[b.Path]
		}
		return roles[a.Role] - roles[b.Role]
	})
	return rows
}
