-- Longplay: render a bar-exact clip at the project tempo and insert it at the edit cursor.
--
-- A REAPER ReaScript (Actions > Show action list > New action > Load ReaScript).
--
-- How it talks to Longplay: REAPER's Lua has no UDP sockets (OSC in ReaScript needs an extension
-- such as SWS/ReaPack libraries), so this script shells out to longplay_client.py, which sits
-- next to it and speaks OSC to `longplay serve` (default 127.0.0.1:9030). The client prints the
-- rendered file paths; the script polls for them with reaper.defer, so REAPER stays responsive
-- while the model renders, then inserts the first file at the edit cursor with InsertMedia.
--
-- Needs: `longplay serve` running, Python 3 with python-osc (`pip install python-osc`).
-- Set PYTHON below if `python3` is not on REAPER's PATH (on Windows, usually "py" or a full path).
--
-- Tempo and meter come from the project at the edit cursor. REAPER counts tempo in quarter notes,
-- Longplay in beats of the bar; the script sends bpm = tempo * denominator / 4 and
-- beats_per_bar = numerator, so 6/8 at 120 sends 240 bpm with 6 beats per bar - the same length.
-- The file's length is exactly bars * beats_per_bar * 60 / bpm seconds, to the sample.

local PYTHON = "python3"
local HOST, PORT = "127.0.0.1", 9030
local STEPS = ""      -- e.g. "100" to override the model's default number of steps
local LOUDNESS = ""   -- e.g. "-18" (LUFS) or "off" to override the server's -14 LUFS
local TIMEOUT_S = 900

local function script_dir()
  local source = debug.getinfo(1, "S").source:sub(2)
  return source:match("^(.*)[/\\]") or "."
end

local function quote(s)
  if package.config:sub(1, 1) == "\\" then return '"' .. s:gsub('"', '\\"') .. '"' end
  return "'" .. s:gsub("'", "'\\''") .. "'"
end

local function file_exists(path)
  local f = io.open(path, "r")
  if f then f:close() return true end
  return false
end

local function read_all(path)
  local f = io.open(path, "r")
  if not f then return "" end
  local text = f:read("a") or ""
  f:close()
  return text
end

-- Project tempo and meter at the edit cursor; bars from the time selection if there is one.
local cursor = reaper.GetCursorPosition()
local num, denom, tempo = reaper.TimeMap_GetTimeSigAtTime(0, cursor)
local bpm = tempo * denom / 4
local bar_seconds = num * 60 / bpm
local sel_start, sel_end = reaper.GetSet_LoopTimeRange(false, false, 0, 0, false)
local default_bars = 8
if sel_end > sel_start then default_bars = math.max(1, math.floor((sel_end - sel_start) / bar_seconds + 0.5)) end

local ok, answers = reaper.GetUserInputs("Longplay", 3, "Prompt,Bars,Seed (-1 random),extrawidth=200",
                                         "," .. default_bars .. ",-1")
if not ok then return end
local prompt, bars, seed = answers:match("^(.-),(%d+),(%-?%d+)$")
if not prompt or prompt == "" then
  reaper.ShowMessageBox("Enter a prompt, a whole number of bars and a seed.", "Longplay", 0)
  return
end

local id = string.format("reaper-%d-%d", os.time(), math.random(0, 999999))
local out = reaper.GetResourcePath() .. "/Scripts/longplay-" .. id .. ".txt"
local args = {
  PYTHON, quote(script_dir() .. "/longplay_client.py"), quote(prompt),
  "--host", HOST, "--port", tostring(PORT), "--id", id, "--quiet",
  "--bpm", string.format("%.6f", bpm), "--bars", bars, "--beats-per-bar", tostring(num),
  "--seed", seed, "--timeout", tostring(TIMEOUT_S),
}
if STEPS ~= "" then table.insert(args, "--steps") table.insert(args, STEPS) end
if LOUDNESS ~= "" then table.insert(args, "--loudness") table.insert(args, LOUDNESS) end
local command = table.concat(args, " ") .. " > " .. quote(out) .. " 2>&1; echo $? > " .. quote(out .. ".done")
if package.config:sub(1, 1) == "\\" then
  command = 'cmd /c "' .. table.concat(args, " ") .. " > " .. quote(out) .. " 2>&1 & echo %errorlevel% > "
            .. quote(out .. ".done") .. '"'
  reaper.ExecProcess(command, -1)
else
  reaper.ExecProcess("/bin/sh -c " .. quote(command), -1)
end

local started = reaper.time_precise()

local function finish()
  local code = tonumber(read_all(out .. ".done"):match("%d+")) or 1
  local text = read_all(out)
  os.remove(out)
  os.remove(out .. ".done")
  if code ~= 0 then
    reaper.ShowMessageBox("Longplay could not render:\n" .. text, "Longplay", 0)
    return
  end
  local path = nil
  for line in text:gmatch("[^\r\n]+") do
    if line:match("%.wav$") or line:match("%.flac$") then path = line break end
  end
  if not path then
    reaper.ShowMessageBox("Longplay finished but named no file:\n" .. text, "Longplay", 0)
    return
  end
  reaper.Undo_BeginBlock()
  reaper.SetEditCurPos(cursor, false, false)
  -- 0: add to the selected track at the edit cursor; 1: on a new track when none is selected.
  reaper.InsertMedia(path, reaper.CountSelectedTracks(0) > 0 and 0 or 1)
  reaper.Undo_EndBlock("Longplay: insert " .. bars .. " bars of '" .. prompt .. "'", -1)
  reaper.UpdateArrange()
end

local function poll()
  if file_exists(out .. ".done") then
    finish()
  elseif reaper.time_precise() - started > TIMEOUT_S + 30 then
    reaper.ShowMessageBox("Longplay did not answer in time; is `longplay serve` running?", "Longplay", 0)
  else
    reaper.defer(poll)
  end
end

poll()
