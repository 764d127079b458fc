-- Longplay in Ardour without a display: `ardour7-lua longplay_ardour_headless.lua key=value ...`
--
-- Runs the core of longplay_ardour.lua (the editor action) in Ardour's headless Lua session host
-- on the Dummy backend: opens (or creates) a session, reads its tempo at the start of the range,
-- asks `longplay serve` over OSC for the range's bars, waits for the file and puts it on a new
-- track at the range's start, then saves the session. tests/bridge/test_ardour.py runs it.
--
--   session=DIR        session folder (created when it holds no DIR/<snapshot>.ardour)
--   snapshot=NAME      default: the folder's name
--   prompt=TEXT        what to render (required)
--   out=DIR            the server's --out folder, absolute (required)
--   host=, port=       the server (127.0.0.1, 9030)
--   seed=, steps=, timeout=   as in docs/osc.md; timeout in seconds (900)
--   start_bar=N bars=K the range: K bars from bar N (also saved as the range marker "longplay");
--                      without them, an existing range marker named "longplay"
--   rate=, bpm=, meter=N/D    a new session's sample rate and tempo (44100, 120, 4/4)
--
-- Ardour 7's headless Lua has no call that imports a file (Editor:do_import lives in the GUI), so
-- this host adds the file the way a saved session holds an embedded import: it creates the track,
-- saves and closes the session, writes the file's sources and the region into the track's playlist
-- in the session file, then loads the session again (Ardour opens the file and drops a region
-- whose source it cannot read) and saves it. Exits 1 with a reason on failure.

local function fail (why)
	io.stderr:write ("longplay_ardour_headless: " .. why .. "\n")
	if Session then close_session () end
	os.exit (1)
end

local function main ()
	local opt = {}
	for _, a in ipairs (arg or {}) do
		local k, v = a:match ("^([%w_]+)=(.*)$")
		if not k then fail ("arguments are key=value, got " .. a) end
		opt[k] = v
	end
	for _, k in ipairs (opt.reload and { "session" } or { "session", "prompt", "out" }) do
		if not opt[k] or opt[k] == "" then fail (k .. "= is required") end
	end

	-- The editor action's core: everything but its dialog and Editor:do_import.
	local here = (debug.getinfo (1, "S").source:sub (2)):match ("^(.*)/") or "."
	ardour = ardour or function () end
	dofile (here .. "/longplay_ardour.lua")
	local L = factory { ["longplay-core"] = true }

	local dir = opt.session:gsub ("/+$", "")
	local snapshot = opt.snapshot or dir:match ("([^/]+)$")
	local file = dir .. "/" .. snapshot .. ".ardour"

	if not AudioEngine:set_backend ("None (Dummy)", "", "") then fail ("no Dummy backend") end

	local function exists (path)
		local f = io.open (path, "r")
		if f then f:close () return true end
		return false
	end

	if exists (file) then
		if not load_session (dir, snapshot) then fail ("cannot load " .. file) end
	else
		local rate = tonumber (opt.rate or L.RATE)
		if not create_session (dir, snapshot, rate) then fail ("cannot create " .. file) end
		local n, d = (opt.meter or "4/4"):match ("^(%d+)/(%d+)$")
		local bpm = tonumber (opt.bpm or 120)
		local tm = Temporal.TempoMap.fetch_writable ()
		tm:set_tempo (Temporal.Tempo (bpm, bpm, tonumber (d)), Temporal.timepos_t (0))
		tm:set_meter (Temporal.Meter (tonumber (n), tonumber (d)), Temporal.timepos_t (0))
		Temporal.TempoMap.update (tm)
	end
	local rate = Session:nominal_sample_rate ()

	if opt.reload then
		-- The check: every region's file is found and read (a missing file loads as silence,
		-- under its bare name). Prints each region's place, length, file and peak.
		local n, unread = 0, nil
		for route in Session:get_tracks ():iter () do
			local t = route:to_track ()
			for reg in t:playlist ():region_list ():iter () do
				local src = reg:source (0):to_filesource ()
				local where = src:isnil () and "?" or src:path ()
				local peak = reg:to_audioregion ():maximum_amplitude (nil)
				print (string.format ("longplay: region %s on track %s at sample %d, %d samples, file %s, peak %.3f",
				                      reg:name (), t:name (), reg:position ():samples (), reg:length ():samples (),
				                      where, peak))
				if where:sub (1, 1) ~= "/" or peak <= 0 then unread = unread or where end
				n = n + 1
			end
		end
		Session:save_state ("", false, false, false, false, false)
		close_session ()
		if n == 0 then fail ("no region in " .. file) end
		if unread then fail ("Ardour could not read " .. unread) end
		return
	end

	-- The range: from arguments (and kept as a range marker), else the session's "longplay" marker.
	local first, last
	if opt.start_bar then
		first = L.bar_start (tonumber (opt.start_bar))
		last = L.bar_start (tonumber (opt.start_bar) + tonumber (opt.bars or L.DEFAULT_BARS))
		local loc = Session:locations ():add_range (Temporal.timepos_t (first), Temporal.timepos_t (last))
		loc:set_name ("longplay")
	else
		for l in Session:locations ():list ():iter () do
			if l:is_range_marker () and l:name () == "longplay" then
				first, last = l:start ():samples (), l:_end ():samples ()
			end
		end
		if not first then fail ("give start_bar= and bars=, or add a range marker named longplay") end
	end

	local m = L.musical_at (first)
	local r = L.request { prompt = opt.prompt, bpm = m.bpm, bars = L.bars_between (first, last, rate),
	                      beats_per_bar = m.beats_per_bar, seed = tonumber (opt.seed or -1), out = opt.out,
	                      steps = tonumber (opt.steps) }
	print (string.format ("longplay: %s: %d bars at %s bpm (%d/bar) from sample %d -> %s", r.id, r.bars,
	                      string.format ("%g", r.bpm), r.beats_per_bar, first, r.path))
	local bad = L.check (r)
	if bad then fail (bad) end
	local path, why = L.render (opt.host or "127.0.0.1", tonumber (opt.port or 9030), r, tonumber (opt.timeout))
	if not path then fail (why) end

	local info = L.wav_info (path)
	if not info then fail ("not a WAV Ardour can embed: " .. path) end

	-- A new track named after the file, then the file on its playlist at `first`.
	local track_name = path:match ("([^/]+)%.wav$")
	local tracks = Session:new_audio_track (info.channels, 2, nil, 1, track_name,
	                                        ARDOUR.PresentationInfo.max_order, ARDOUR.TrackMode.Normal, true)
	if tracks:size () ~= 1 then fail ("could not add a track") end
	local playlist = tracks:front ():playlist ():name ()
	Session:save_state ("", false, false, false, false, false)
	close_session ()

	local function esc (s)
		return (s:gsub ("&", "&amp;"):gsub ("<", "&lt;"):gsub (">", "&gt;"):gsub ('"', "&quot;"))
	end
	local function plain (s) -- a Lua pattern matching s literally
		return (s:gsub ("[%^%$%(%)%%%.%[%]%*%+%-%?]", "%%%0"))
	end
	local function into (xml, list, items) -- items into <list>...</list> (or <list/>)
		local n
		xml, n = xml:gsub ("<" .. list .. "/>", function () return "<" .. list .. ">\n" .. items .. "  </" .. list .. ">" end, 1)
		if n == 0 then
			xml, n = xml:gsub ("</" .. list .. ">", function () return items .. "  </" .. list .. ">" end, 1)
		end
		if n == 0 then fail ("no <" .. list .. "> in " .. file) end
		return xml
	end

	local f = io.open (file, "r")
	local xml = f:read ("a")
	f:close ()
	local counter = tonumber (xml:match ('id%-counter="(%d+)"'))
	if not counter then fail ("no id-counter in " .. file) end
	local function sc (samples) -- Ardour 7 keeps audio-time positions in superclock ticks
		return samples * Temporal.superclock_ticks_per_second () // rate
	end
	local sources, src_attrs = "", ""
	for c = 0, info.channels - 1 do
		local id = counter + 1 + c
		sources = sources .. string.format ('    <Source name="%s" type="audio" flags="" id="%d" channel="%d" origin="" gain="1"/>\n',
		                                    esc (path), id, c)
		src_attrs = src_attrs .. string.format (' source-%d="%d" master-source-%d="%d"', c, id, c, id)
	end
	local function region (id, pos, whole)
		return string.format ('<Region name="%s" muted="0" opaque="1" locked="0" video-locked="0" automatic="0" '
			.. 'whole-file="%d" import="1" external="1" sync-marked="0" left-of-split="0" right-of-split="0" hidden="0" '
			.. 'position-locked="0" valid-transients="0" start="a0" length="a%d@a%d" sync-position="a0" '
			.. 'ancestral-start="a0" ancestral-length="a0@a0" stretch="1" shift="1" layering-index="0" tags="" '
			.. 'contents="0" envelope-active="0" default-fade-in="0" default-fade-out="0" fade-in-active="1" '
			.. 'fade-out-active="1" scale-amplitude="1" id="%d" type="audio" first-edit="nothing"%s channels="%d"/>\n',
			esc (track_name), whole and 1 or 0, sc (info.frames), sc (pos), id, src_attrs, info.channels)
	end
	local base = counter + info.channels + 1
	xml = into (xml, "Sources", sources)
	xml = into (xml, "Regions", "    " .. region (base, 0, true))
	local s, e = xml:find ('<Playlist [^>]-name="' .. plain (esc (playlist)) .. '"[^>]*>')
	if not s then fail ("no playlist " .. playlist .. " in " .. file) end
	local tag = xml:sub (s, e)
	local entry = "      " .. region (base + 1, first, false)
	if tag:sub (-2) == "/>" then
		xml = xml:sub (1, s - 1) .. tag:sub (1, -3) .. ">\n" .. entry .. "    </Playlist>" .. xml:sub (e + 1)
	else
		xml = xml:sub (1, e) .. "\n" .. entry .. xml:sub (e + 1)
	end
	xml = xml:gsub ('id%-counter="%d+"', 'id-counter="' .. (base + 10) .. '"', 1)
	f = io.open (file, "w")
	f:write (xml)
	f:close ()

	print ("longplay: placed " .. path .. " in " .. file .. "; check it with reload=1")
end

-- A Lua error with a session open would leave ardour7-lua hanging at exit: close it first.
local ok, err = xpcall (main, debug.traceback)
if not ok then fail (tostring (err)) end
os.exit (0)
