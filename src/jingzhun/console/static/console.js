// jingzhun console: draws the pages' charts and runs the segment builder. No framework.
// Pages carry no inline script (the console's Content-Security-Policy forbids it): charts
// travel as JSON in <script type="application/json" class="chart-data"> and are drawn here.
(function () {
  "use strict";

  var PLOTLY_CONFIG = { displaylogo: false, responsive: true, displayModeBar: false };

  function drawCharts() {
    if (!window.Plotly) {
      return;
    }
    document.querySelectorAll("script.chart-data").forEach(function (node) {
      var target = document.getElementById(node.dataset.target);
      if (!target) {
        return;
      }
      var figure = JSON.parse(node.textContent);
      window.Plotly.newPlot(target, figure.data || [], figure.layout || {}, PLOTLY_CONFIG);
      target.dataset.drawn = "true";
    });
  }

  function csrfToken() {
    var meta = document.querySelector('meta[name="csrf-token"]');
    return meta ? meta.getAttribute("content") : "";
  }

  function postJson(url, body) {
    return fetch(url, {
      method: "POST",
      credentials: "same-origin",
      headers: { "Content-Type": "application/json", "X-CSRF-Token": csrfToken() },
      body: JSON.stringify(body)
    }).then(function (response) {
      return response.json().then(function (payload) {
        return { status: response.status, payload: payload };
      });
    });
  }

  function listProblems(list, problems) {
    list.textContent = "";
    (problems || []).forEach(function (text) {
      var item = document.createElement("li");
      item.textContent = text;
      list.appendChild(item);
    });
  }

  function problemsOf(answer) {
    var payload = answer.payload || {};
    if (payload.problems && payload.problems.length) {
      return payload.problems;
    }
    if (payload.message) {
      return [payload.message];
    }
    if (Array.isArray(payload.detail)) {
      // FastAPI's own validation errors (a rule longer than the limit, for instance)
      return payload.detail.map(function (d) { return d.msg; });
    }
    return ["the console answered " + answer.status];
  }

  function builder() {
    var root = document.querySelector(".builder");
    if (!root) {
      return;
    }
    var rule = document.getElementById("rule");
    var count = document.getElementById("live-count");
    var status = document.getElementById("live-status");
    var problems = document.getElementById("live-problems");
    var sql = document.getElementById("live-sql");
    var sent = 0;
    var timer = null;

    function refresh() {
      var text = rule.value;
      var mine = ++sent;
      if (!text.trim()) {
        count.textContent = "–";
        count.dataset.count = "";
        status.textContent = "type a rule";
        listProblems(problems, []);
        return;
      }
      count.classList.add("stale");
      status.textContent = "counting…";
      postJson(root.dataset.countUrl, { rule: text }).then(function (answer) {
        if (mine !== sent) {
          return; // an older answer arriving after a newer question
        }
        count.classList.remove("stale");
        if (answer.status === 200 && answer.payload.ok) {
          count.textContent = answer.payload.display;
          count.dataset.count = answer.payload.display;
          status.textContent = "profiles of " + answer.payload.as_of;
          sql.textContent = answer.payload.sql;
          listProblems(problems, []);
        } else {
          count.textContent = "–";
          count.dataset.count = "";
          status.textContent = "the rule has problems";
          listProblems(problems, problemsOf(answer));
        }
      }).catch(function (error) {
        if (mine === sent) {
          status.textContent = "could not reach the console: " + error;
        }
      });
    }

    rule.addEventListener("input", function () {
      window.clearTimeout(timer);
      timer = window.setTimeout(refresh, 350);
    });
    refresh();

    var explainForm = document.getElementById("explain-form");
    var customer = document.getElementById("explain-customer");
    var verdict = document.getElementById("explain-verdict");
    var steps = document.getElementById("explain-steps");
    explainForm.addEventListener("submit", function (event) {
      event.preventDefault();
      verdict.textContent = "explaining…";
      postJson(root.dataset.explainUrl, { rule: rule.value, customer: customer.value })
        .then(function (answer) {
          var body = steps.querySelector("tbody");
          body.textContent = "";
          if (answer.status !== 200 || !answer.payload.ok) {
            steps.hidden = true;
            verdict.textContent = problemsOf(answer).join("; ");
            verdict.className = "problems";
            return;
          }
          var p = answer.payload;
          verdict.className = p.member ? "yes" : "no";
          verdict.textContent = p.customer_key + (p.member ? " is in" : " is not in") +
            " the segment (profiles of " + p.as_of + ")";
          p.steps.forEach(function (step) {
            var row = document.createElement("tr");
            var ruleCell = document.createElement("td");
            ruleCell.textContent = step.rule;
            ruleCell.style.paddingLeft = (8 + 16 * step.depth) + "px";
            var valueCell = document.createElement("td");
            valueCell.textContent = step.value === null ? "–" : String(step.value);
            var holds = document.createElement("td");
            holds.textContent = step.result ? "yes" : "no";
            holds.className = step.result ? "yes" : "no";
            row.appendChild(ruleCell);
            row.appendChild(valueCell);
            row.appendChild(holds);
            body.appendChild(row);
          });
          steps.hidden = false;
        });
    });
  }

  document.addEventListener("DOMContentLoaded", function () {
    drawCharts();
    builder();
  });
})();
