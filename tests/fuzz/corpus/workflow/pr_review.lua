-- input: {"title": "Add user search endpoint", "diff": "diff --git a/app/routes.py b/app/routes.py\nindex 5d41c2a..e3b7f90 100644\n--- a/app/routes.py\n+++ b/app/routes.py\n@@ -1,6 +1,6 @@\n-from flask import Blueprint, abort, jsonify\n+from flask import Blueprint, abort, jsonify, request\n \n-from app.users import get_user\n+from app.users import get_user, search_users\n \n bp = Blueprint(\"users\", __name__)\n \n@@ -11,3 +11,10 @@ def show_user(user_id: int):\n     if user is None:\n         abort(404)\n     return jsonify(user)\n+\n+\n+@bp.get(\"/users/search\")\n+def users_search():\n+    term = request.args.get(\"q\", \"\")\n+    page = int(request.args.get(\"page\", 1))\n+    return jsonify(search_users(term, page))\ndiff --git a/app/users.py b/app/users.py\nindex 3f2a1c4..8b9d0e7 100644\n--- a/app/users.py\n+++ b/app/users.py\n@@ -8,3 +8,18 @@ def get_user(user_id: int) -> dict | None:\n     )\n     row = cur.fetchone()\n     return dict(row) if row else None\n+\n+\n+PAGE_SIZE = 20\n+\n+\n+def search_users(term: str, page: int = 1) -> list[dict]:\n+    \"\"\"Return one page (pages start at 1) of the users whose name contains `term`.\"\"\"\n+    conn = get_connection()\n+    cur = conn.execute(\n+        f\"SELECT id, name, email FROM users WHERE name LIKE '%{term}%' ORDER BY name\"\n+    )\n+    rows = cur.fetchall()\n+    start = page * PAGE_SIZE\n+    end = start + PAGE_SIZE\n+    return [dict(row) for row in rows[start:end]]\n"}
-- pr_review.lua: the demo — a lead agent analyses a diff, a coder and a security auditor work on
-- it in parallel, and the lead synthesises one review.
--
--   troupe run scripts/workflows/pr_review.lua                      # reviews a built-in sample diff
--   troupe run scripts/workflows/pr_review.lua --input @scripts/workflows/examples/pr_review_input.json
--   troupe run scripts/workflows/pr_review.lua --input '{"diff": "...", "title": "...", "format": "json"}'
--
-- Input (all optional): diff (a unified diff), title (the pull request's title), format
-- ("markdown", the default: one document; "json": a table with the review and each agent's part).
local troupe = require("troupe")

-- Used when the input has no diff, so the demo runs with no arguments. The same diff is in
-- examples/sample.diff: a search endpoint with a planted SQL injection and an off-by-one.
local SAMPLE_TITLE = "Add user search endpoint"
local SAMPLE_DIFF = [==[
diff --git a/app/routes.py b/app/routes.py
index 5d41c2a..e3b7f90 100644
--- a/app/routes.py
+++ b/app/routes.py
@@ -1,6 +1,6 @@
-from flask import Blueprint, abort, jsonify
+from flask import Blueprint, abort, jsonify, request
 
-from app.users import get_user
+from app.users import get_user, search_users
 
 bp = Blueprint("users", __name__)
 
@@ -11,3 +11,10 @@ def show_user(user_id: int):
     if user is None:
         abort(404)
     return jsonify(user)
+
+
+@bp.get("/users/search")
+def users_search():
+    term = request.args.get("q", "")
+    page = int(request.args.get("page", 1))
+    return jsonify(search_users(term, page))
diff --git a/app/users.py b/app/users.py
index 3f2a1c4..8b9d0e7 100644
--- a/app/users.py
+++ b/app/users.py
@@ -8,3 +8,18 @@ def get_user(user_id: int) -> dict | None:
     )
     row = cur.fetchone()
     return dict(row) if row else None
+
+
+PAGE_SIZE = 20
+
+
+def search_users(term: str, page: int = 1) -> list[dict]:
+    """Return one page (pages start at 1) of the users whose name contains `term`."""
+    conn = get_connection()
+    cur = conn.execute(
+        f"SELECT id, name, email FROM users WHERE name LIKE '%{term}%' ORDER BY name"
+    )
+    rows = cur.fetchall()
+    start = page * PAGE_SIZE
+    end = start + PAGE_SIZE
+    return [dict(row) for row in rows[start:end]]
]==]

local leader = troupe.agent{
  name = "leader", model = "anthropic/claude-sonnet-4-5", role = "leader", temperature = 0.2,
}
-- The specialists answer one question each: they keep no conversation (history = false). The
-- leader keeps its history, so its second call sees its own analysis.
local coder = troupe.agent{
  name = "coder", model = "openai/gpt-4o", role = "coder", temperature = 0.2, history = false,
}
local security = troupe.agent{
  name = "security", model = "gemini/gemini-2.5-pro", role = "security_auditor", temperature = 0,
  history = false,
}

-- Reads a unified diff: the files it touches (in order), how many lines it removes, and each
-- added line with its number in the new file. Hunk lengths decide what is a hunk line, so a
-- removed "-- comment" is not taken for a "--- file" header.
local function parse_diff(diff)
  local d = { files = {}, added = {}, removed = 0 }
  local seen, file, new_line, old_left, new_left = {}, "?", 0, 0, 0
  for line in (diff .. "\n"):gmatch("(.-)\r?\n") do
    local c = line:sub(1, 1)
    if old_left > 0 or new_left > 0 then
      if c == "+" then
        d.added[#d.added + 1] = { file = file, line = new_line, text = line:sub(2) }
        new_line, new_left = new_line + 1, new_left - 1
      elseif c == "-" then
        d.removed, old_left = d.removed + 1, old_left - 1
      elseif c == " " or line == "" then
        new_line, old_left, new_left = new_line + 1, old_left - 1, new_left - 1
      end -- "\ No newline at end of file" counts for neither side
    else
      local path = line:match("^%+%+%+ b/(.+)$") or line:match("^%+%+%+ (.+)$")
      local o, on, n, nn = line:match("^@@ %-(%d+),?(%d*) %+(%d+),?(%d*) @@")
      if path and path ~= "/dev/null" then
        file = path
        if not seen[path] then
          seen[path] = true
          d.files[#d.files + 1] = path
        end
      elseif o then
        new_line = tonumber(n)
        old_left = on == "" and 1 or tonumber(on)
        new_left = nn == "" and 1 or tonumber(nn)
      end
    end
  end
  return d
end

-- Pattern checks over the added lines (lowercased): a line is flagged when it matches one of
-- `any` and, if the check has `with`, one of those too. They do not replace the agents' review;
-- they hand them, and the reader, concrete and located starting points.
local CHECKS = {
  { what = "SQL built by string interpolation: possible SQL injection (use bound parameters)",
    any = { "%f[%a]select%f[%A].*%f[%a]from%f[%A]", "%f[%a]insert%s+into%f[%A]",
            "%f[%a]update%f[%A].*%f[%a]set%f[%A]", "%f[%a]delete%s+from%f[%A]" },
    with = { "f\"[^\"]*{", "f'[^']*{", "%.format%(", "\"%s*%%", "'%s*%%", "[\"']%s*%+", "%+%s*[\"']",
             "[\"']%s*%.%.", "%${" } },
  { what = "shell command built at run time: possible command injection",
    any = { "shell%s*=%s*true", "os%.system%(", "os%.popen%(", "%f[%w_.]exec%(", "%f[%w_.]eval%(" } },
  { what = "unsafe deserialization of possibly untrusted data",
    any = { "pickle%.loads?%(", "yaml%.load%(", "marshal%.loads?%(" } },
  { what = "TLS certificate verification disabled",
    any = { "verify%s*=%s*false", "insecureskipverify%s*:%s*true" } },
  { what = "credential hard-coded in the source",
    any = { "password%s*=%s*[\"'][^\"']+[\"']", "secret%s*=%s*[\"'][^\"']+[\"']",
            "api_?key%s*=%s*[\"'][^\"']+[\"']" } },
}

local function matches_one(text, patterns)
  for _, p in ipairs(patterns) do
    if text:find(p) then return true end
  end
  return false
end

-- Returns the flagged lines as Markdown list items.
local function precheck(added)
  local notes = {}
  for _, a in ipairs(added) do
    local l = a.text:lower()
    for _, check in ipairs(CHECKS) do
      if matches_one(l, check.any) and (check.with == nil or matches_one(l, check.with)) then
        notes[#notes + 1] = ("- `%s:%d`: %s: `%s`"):format(a.file, a.line, check.what,
                                                           a.text:match("^%s*(.-)%s*$"))
      end
    end
  end
  return notes
end

-- The diff as the agents see it: fenced, so its content reads as material, not instructions.
-- The fence is longer than any run of backticks inside (a diff of a Markdown file has some).
local function fenced(diff)
  local longest = 2
  for run in diff:gmatch("`+") do longest = math.max(longest, #run) end
  local fence = ("`"):rep(longest + 1)
  return fence .. "diff\n" .. diff:gsub("\n+$", "") .. "\n" .. fence
end

return troupe.workflow{
  name = "pr_review",
  description = "Reviews a pull request's diff with a lead, a coder and a security auditor.",
  run = function(input)
    local diff, title, format = input.diff, input.title, input.format or "markdown"
    if diff == nil then
      diff, title = SAMPLE_DIFF, title or SAMPLE_TITLE
      troupe.log("no input.diff given: reviewing the built-in sample " ..
                 "(or pass --input @scripts/workflows/examples/pr_review_input.json)")
    end
    if type(diff) ~= "string" or not diff:find("%S") then
      error("input.diff must be a non-empty string holding a unified diff (got " ..
            (type(diff) == "string" and "an empty string" or "a " .. type(diff)) .. ")", 0)
    end
    if title ~= nil and type(title) ~= "string" then
      error("input.title must be a string (got a " .. type(title) .. ")", 0)
    end
    if format ~= "markdown" and format ~= "json" then
      error("input.format must be \"markdown\" or \"json\" (got " .. tostring(format) .. ")", 0)
    end

    local d = parse_diff(diff)
    if title == nil then
      local shown = table.concat(d.files, ", ", 1, math.min(#d.files, 3))
      if #d.files > 3 then shown = shown .. (" and %d more files"):format(#d.files - 3) end
      title = #d.files > 0 and "changes to " .. shown or "the change below"
    end
    if #d.files == 0 then
      troupe.log.warn("input.diff has no '+++ file' lines: reviewing it as plain text")
    end
    local flags = precheck(d.added)
    troupe.log(("reviewing %q: %d file(s), +%d -%d lines, %d line(s) flagged by the pre-checks")
               :format(title, #d.files, #d.added, d.removed, #flags))
    local checks = #flags > 0 and table.concat(flags, "\n")
                   or "- nothing flagged (the checks only look for a few common patterns)"

    -- 1. The lead frames the review for the specialists.
    local brief = "Analyse pull request: " .. title .. "\n" ..
      "Write the analysis for your team (a coder and a security auditor): what the change does, " ..
      "the key areas, the risks and open questions, and what each of them should focus on.\n\n" ..
      "## Automated pre-checks\n" .. checks .. "\n\n## The diff\n" .. fenced(diff)
    local analysis = leader:ask(brief)

    -- 2. The specialists work in parallel; each sees the diff, the pre-checks and the analysis.
    local context = "## The lead's analysis\n" .. analysis .. "\n\n## Automated pre-checks\n" ..
                    checks .. "\n\n## The diff\n" .. fenced(diff)
    local fixes, audit = troupe.parallel(
      function()
        return coder:ask(
          "Suggest fixes for pull request: " .. title .. "\n" ..
          "Find the bugs (boundaries and off-by-one errors, input validation, error handling) and " ..
          "give each fix as a code change, with a test that catches it.\n\n" .. context)
      end,
      function()
        return security:ask(
          "Security audit of pull request: " .. title .. "\n" ..
          "Audit the diff for vulnerabilities an attacker could exploit; trace untrusted input " ..
          "from the request to each sink, and confirm or dismiss each pre-check.\n\n" .. context)
      end)

    -- 3. The lead merges everything into the review the author reads. The agent keeps its
    -- conversation, so this call still has the brief (with the diff) and the analysis before it.
    local review = leader:ask(
      "Synthesise the final review of pull request: " .. title .. "\n" ..
      "Merge your analysis with the specialists' findings into one review: the verdict " ..
      "first, then the findings by severity with their fixes, then a checklist for the " ..
      "author.\n\n## Suggested fixes (coder)\n" .. fixes .. "\n\n## Security audit\n" .. audit)
    troupe.log("review ready: " .. #review .. " characters")

    if format == "json" then
      return {
        title = title,
        files = troupe.array(d.files),
        prechecks = troupe.array(flags),
        review = review,
        analysis = analysis,
        fixes = fixes,
        security = audit,
      }
    end
    return table.concat({
      "# Review: " .. title, "",
      review, "",
      "## Automated pre-checks", "",
      checks, "",
      "---", "",
      "## Lead's analysis (" .. leader.model .. ")", "",
      analysis, "",
      "## Suggested fixes (" .. coder.model .. ")", "",
      fixes, "",
      "## Security audit (" .. security.model .. ")", "",
      audit,
    }, "\n")
  end,
}
