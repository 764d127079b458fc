ardour {
	["type"]    = "EditorAction",
	name        = "Longplay: Render at Range",
	category    = "Longplay",
	author      = "Longplay",
	description = [[Asks `longplay serve` (OSC) for a bar-exact clip at the session tempo and imports it on a new track at the start of the selected range (or the playhead). See docs/daw.md.]]
}

-- Ardour Lua cannot receive UDP, so the script names the file it asks for (a fresh `name` and an
-- explicit `seed`, which fix the output name, docs/osc.md "Files a DAW can use") and polls the
-- server's output folder for it. Files appear there atomically (temp name, then rename), so a file
-- under that name is complete. The request is re-sent now and then until the file appears: a
-- re-sent request id is answered with its state, never rendered twice, so a lost datagram or a
-- server started late costs nothing.
--
-- Ardour keeps only the bytecode of `factory`, not the file's other locals, so everything the
-- action needs lives inside it. `factory { ["longplay-core"] = true }` returns the shared core
-- instead of the GUI action: longplay_ardour_headless.lua (ardour7-lua) runs the same code.

function action_params ()
	return {
		["host"] = { title = "Longplay server host (longplay serve)", default = "127.0.0.1" },
		["port"] = { title = "Longplay OSC port", default = "9030" },
		["out"]  = { title = "Output folder of longplay serve (its --out, absolute)", default = "" },
	}
end

function factory (params)
	local P = params or {}
	local L = {}

	L.DEFAULT_BARS = 8
	L.TIMEOUT_S = 900
	L.RESEND_S = 5
	L.RATE = 44100 -- Longplay renders 44.1 kHz: a session at this rate plays the file unresampled

	-- Tempo and meter at a position (samples). Longplay counts beats of the bar, Ardour's tempo
	-- counts its own note type: 6/8 at quarter = 120 is sent as 240 bpm with 6 beats per bar, which
	-- gives the same length.
	function L.musical_at (pos)
		local tm = Temporal.TempoMap.read ()
		local t = Temporal.timepos_t (pos)
		local tempo, meter = tm:tempo_at (t), tm:meter_at (t)
		local bpm = tempo:note_types_per_minute () * meter:note_value () / tempo:note_type ()
		return { bpm = bpm, beats_per_bar = meter:divisions_per_bar () }
	end

	-- The sample where bar `bar` (1-based) starts on the session's tempo map.
	function L.bar_start (bar)
		local tm = Temporal.TempoMap.read ()
		return tm:sample_at_beats (tm:quarters_at_bbt (Temporal.BBT_TIME (bar, 1, 0)))
	end

	-- Whole bars in [first, last) at the tempo at `first`, at least 1.
	function L.bars_between (first, last, rate)
		local m = L.musical_at (first)
		local bar_s = m.beats_per_bar * 60 / m.bpm
		return math.max (1, math.floor ((last - first) / rate / bar_s + 0.5))
	end

	-- Python's f"{x:g}", as bridge/naming.py writes the tempo into file names.
	local function num (x)
		return string.format ("%g", x)
	end

	-- One request: what to send and the path its first file will have.
	-- o: prompt, bpm, bars, beats_per_bar, out; optional seed, steps, loudness.
	function L.request (o)
		-- The wall clock keeps names unique across sessions and reboots (a taken name would get a
		-- "-1" the script never looks for); `os` may be missing where Ardour sandboxes scripts.
		local now = os and os.time and os.time () or 0
		local stamp = string.format ("%x%05x", now, ARDOUR.LuaAPI.monotonic_time () % 0x100000)
		local r = {
			id = "ardour-" .. stamp,
			name = "ardour-" .. stamp, -- lower case letters, digits and '-': kept as is by the slug
			seed = o.seed and o.seed >= 0 and math.floor (o.seed) or ARDOUR.LuaAPI.monotonic_time () % 2147483632,
			prompt = o.prompt, bpm = o.bpm, bars = math.floor (o.bars),
			beats_per_bar = math.floor (o.beats_per_bar), steps = o.steps,
		}
		r.path = string.format ("%s/%s_%sbpm_%dbar_s%d_v1.wav", o.out, r.name, num (r.bpm), r.bars, r.seed)
		return r
	end

	-- Why the server would refuse `r` (docs/osc.md's ranges), or nil: it cannot tell the script.
	function L.check (r)
		if not r.prompt or r.prompt == "" then return "enter a prompt" end
		if r.bpm < 20 or r.bpm > 300 then
			return string.format ("Longplay plays 20-300 beats of the bar a minute; the session has %s here", num (r.bpm))
		end
		if r.bars < 1 or r.bars > 512 then return string.format ("bars must be 1-512 (got %d)", r.bars) end
		if r.beats_per_bar < 1 or r.beats_per_bar > 32 then
			return string.format ("beats per bar must be 1-32 (got %d)", r.beats_per_bar)
		end
		if not r.path:match ("^/") then return "the output folder must be an absolute path (longplay serve --out)" end
		return nil
	end

	-- /longplay/render over UDP. Doubles ('d') carry the tempo exactly.
	function L.send (host, port, r)
		local types = "ssssdsisisiss"
		local args = { r.id, "prompt", r.prompt, "bpm", r.bpm, "bars", r.bars, "beats_per_bar", r.beats_per_bar,
		               "seed", r.seed, "name", r.name }
		if r.steps then
			types = types .. "si"
			args[#args + 1] = "steps"
			args[#args + 1] = math.floor (r.steps)
		end
		local addr = ARDOUR.LuaOSC.Address (string.format ("osc.udp://%s:%d", host, math.floor (port)))
		addr:send ("/longplay/render", types, table.unpack (args))
	end

	local function exists (path)
		return ARDOUR.LuaAPI.file_test (path, ARDOUR.LuaAPI.FileTest.IsRegular)
	end

	-- Send, then wait for the file, re-sending every RESEND_S. `tick (elapsed_s)` may return false
	-- to give up (the GUI's Cancel). Returns the path, or nil and a reason.
	function L.render (host, port, r, timeout_s, tick)
		local t0 = ARDOUR.LuaAPI.monotonic_time ()
		local last = -L.RESEND_S
		while true do
			local elapsed = (ARDOUR.LuaAPI.monotonic_time () - t0) / 1e6
			if exists (r.path) then return r.path end
			if elapsed > (timeout_s or L.TIMEOUT_S) then
				return nil, string.format ("no file after %d s: is `longplay serve --out %s` running on %s:%d? "
				                           .. "(its log says why a request failed)", math.floor (elapsed),
				                           r.path:match ("^(.*)/") or ".", host, math.floor (port))
			end
			if tick and tick (elapsed) == false then return nil, "cancelled" end
			if elapsed - last >= L.RESEND_S then
				L.send (host, port, r)
				last = elapsed
			end
			ARDOUR.LuaAPI.usleep (100000)
		end
	end

	-- Frames and channels of a PCM/float WAV, from its header.
	function L.wav_info (path)
		local f = io.open (path, "rb")
		if not f then return nil end
		local data = f:read (65536) or ""
		f:close ()
		if data:sub (1, 4) ~= "RIFF" or data:sub (9, 12) ~= "WAVE" then return nil end
		local i, channels, block = 13, nil, nil
		while i + 8 <= #data do
			local id, size = data:sub (i, i + 3), string.unpack ("<I4", data, i + 4)
			if id == "fmt " then
				channels = string.unpack ("<I2", data, i + 10)
				block = string.unpack ("<I2", data, i + 20)
			elseif id == "data" then
				if not block then return nil end
				return { frames = size // block, channels = channels }
			end
			i = i + 8 + size + (size % 2)
		end
		return nil
	end

	if P["longplay-core"] then return L end

	-- The editor action: range (or playhead), dialog, render, import on a new track.
	return function ()
		if not Session then return end
		local rate = Session:nominal_sample_rate ()
		local sel = Editor:get_selection ()
		local first, last = Session:transport_sample (), nil
		if sel.time:start_sample () < sel.time:end_sample () then
			first, last = sel.time:start_sample (), sel.time:end_sample ()
		end
		local m = L.musical_at (first)
		local bars = last and L.bars_between (first, last, rate) or L.DEFAULT_BARS

		local dlg = LuaDialog.Dialog ("Longplay", {
			{ type = "heading", title = string.format ("%s BPM, %d/bar, at sample %d", num (m.bpm), m.beats_per_bar, first) },
			{ type = "entry", key = "prompt", title = "Prompt", default = "" },
			{ type = "number", key = "bars", title = "Bars", min = 1, max = 512, step = 1, digits = 0, default = bars },
			{ type = "number", key = "seed", title = "Seed (-1: random)", min = -1, max = 2147483631, step = 1, digits = 0, default = -1 },
			{ type = "folder", key = "out", title = "longplay serve --out", path = P["out"] and P["out"] ~= "" and P["out"] or os and os.getenv and os.getenv ("HOME") or "/" },
			{ type = "entry", key = "host", title = "Host", default = P["host"] or "127.0.0.1" },
			{ type = "number", key = "port", title = "OSC port", min = 1, max = 65535, step = 1, digits = 0, default = tonumber (P["port"]) or 9030 },
		})
		local rv = dlg:run ()
		if not rv then return end
		if rate ~= L.RATE then
			print (string.format ("Longplay: the session runs at %d Hz; Ardour resamples the 44100 Hz file on import", rate))
		end
		local r = L.request { prompt = rv["prompt"], bpm = m.bpm, bars = rv["bars"], beats_per_bar = m.beats_per_bar,
		                      seed = rv["seed"], out = rv["out"] }
		local bad = L.check (r)
		if bad then
			LuaDialog.Message ("Longplay", bad, LuaDialog.MessageType.Error, LuaDialog.ButtonType.Close):run ()
			return
		end
		local pw = LuaDialog.ProgressWindow ("Longplay: rendering " .. r.name, true)
		local path, why = L.render (rv["host"], rv["port"], r, L.TIMEOUT_S, function (elapsed)
			-- progress () returns true when the user pressed Cancel
			return not pw:progress ((elapsed % 30) / 30, string.format ("waiting for %s (%d s)", r.path, math.floor (elapsed)))
		end)
		pw:done ()
		if not path then
			LuaDialog.Message ("Longplay", why, LuaDialog.MessageType.Error, LuaDialog.ButtonType.Close):run ()
			return
		end
		local files = C.StringVector ()
		files:push_back (path)
		Editor:do_import (files, Editing.ImportDistinctFiles, Editing.ImportAsTrack, ARDOUR.SrcQuality.SrcBest,
		                  ARDOUR.MidiTrackNameSource.SMFTrackName, ARDOUR.MidiTempoMapDisposition.SMFTempoIgnore,
		                  Temporal.timepos_t (first), ARDOUR.PluginInfo (), ARDOUR.Track (), false)
	end
end
