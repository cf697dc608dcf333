// The HTTP source: failures of every kind, paging by number and by link, the bearer token.
#include <gtest/gtest.h>

#include "test_support.hpp"

namespace campus::attendance {
namespace {
using namespace testing;

Json page_json(int page, int pages, int per_page, const char* date) {
  Json records = Json::array();
  for (int i = 0; i < per_page; ++i) {
    int n = (page - 1) * per_page + i;
    records.push_back({{"student_id", "S" + std::to_string(n)}, {"class", "3-" + std::to_string(n % 4)}, {"grade", 3},
                       {"date", date}, {"status", n == 0 ? "absent" : "present"}, {"leave_approved", false},
                       {"id_card", "110101201001011234"}});
  }
  return {{"records", records}, {"page", page}, {"pages", pages}};
}

int page_param(const std::string& url) {
  auto p = url.find("page=");
  return p == std::string::npos ? 1 : std::stoi(url.substr(p + 5));
}

class HttpSourceTest : public ::testing::Test {
 protected:
  void SetUp() override {
    settings.calendar_file = dir.write("calendar.csv", kCalendarCsv);
    HttpSourceSettings h;
    h.url = "http://127.0.0.1:9/api/attendance?from={from}&to={to}&page={page}";
    h.token = "s3cret-token";
    h.lookback_days = 7;
    settings.http = h;
    ASSERT_TRUE(audit.apply(settings).ok());
  }
  AuditReport run(const char* date) {
    AuditReport r = run_audit(audit, store, http, io, std::string(date) + "T18:00:00");
    store.commit(r, std::string(date) + "T18:00:00+08:00");
    return r;
  }
  const Finding* source(const AuditReport& r) {
    for (const auto& f : r.findings)
      if (f.subject == "source:http") return &f;
    return nullptr;
  }
  TempDir dir;
  AttendanceSettings settings;
  AttendanceAudit audit;
  FakeStore store;
  asio::io_context io;
  FakeHttp http{io};
};

TEST_F(HttpSourceTest, ServerErrorThenGoodThenNotJsonThenTimeout) {
  int call = 0;
  http.respond = [&](const HttpRequest& req) -> Result<HttpResponse> {
    ++call;
    if (call == 1) return HttpResponse{500, "oops", {}, Millis(1)};
    if (call == 2) return HttpResponse{200, page_json(1, 1, 5, "2026-11-02").dump(), {}, Millis(1)};
    if (call == 3) return HttpResponse{200, "<html>maintenance</html>", {}, Millis(1)};
    return Error{req.url, "timed out after 10000 ms", ""};
  };
  AuditReport r = run("2026-11-02");
  EXPECT_EQ(source(r)->state, "unknown");
  EXPECT_NE(source(r)->reason.find("500"), std::string::npos);
  EXPECT_EQ(r.summary["records"], 0);
  EXPECT_FALSE(r.input_errors.empty());

  r = run("2026-11-02");
  EXPECT_EQ(source(r)->state, "ok");
  EXPECT_EQ(r.summary["records"], 5);

  r = run("2026-11-02");
  EXPECT_EQ(source(r)->state, "unknown");
  EXPECT_NE(source(r)->reason.find("not JSON"), std::string::npos);
  EXPECT_EQ(r.summary["records"], 5);  // earlier imports stay

  r = run("2026-11-02");
  EXPECT_EQ(source(r)->state, "unknown");
  EXPECT_NE(source(r)->reason.find("timed out"), std::string::npos);
  EXPECT_EQ(r.summary["imports"]["http"]["ok"], false);
}

TEST_F(HttpSourceTest, FollowsPageNumbersOverTwentyOnePages) {
  http.respond = [&](const HttpRequest& req) -> Result<HttpResponse> {
    return HttpResponse{200, page_json(page_param(req.url), 21, 30, "2026-11-02").dump(), {}, Millis(1)};
  };
  AuditReport r = run("2026-11-02");
  EXPECT_EQ(http.requests.size(), 21u);
  EXPECT_EQ(r.summary["records"], 21 * 30);
  EXPECT_EQ(r.summary["imports"]["http"]["pages"], 21);
  // The date range and the token.
  EXPECT_NE(http.requests[0].url.find("from=2026-10-26&to=2026-11-02&page=1"), std::string::npos) << http.requests[0].url;
  bool bearer = false;
  for (const auto& [k, v] : http.requests[0].headers) bearer |= k == "Authorization" && v == "Bearer s3cret-token";
  EXPECT_TRUE(bearer);
  for (const auto& w : r.records) EXPECT_EQ(w.value->dump().find("110101201001011234"), std::string::npos);
}

TEST_F(HttpSourceTest, FollowsNextLinksAndStopsAtNull) {
  settings.http->url = "http://127.0.0.1:9/api/attendance?from={from}&to={to}";
  ASSERT_TRUE(audit.apply(settings).ok());
  http.respond = [&](const HttpRequest& req) -> Result<HttpResponse> {
    int page = req.url.find("cursor=") == std::string::npos ? 1 : std::stoi(req.url.substr(req.url.find("cursor=") + 7));
    Json body = page_json(page, 0, 10, "2026-11-02");
    body.erase("pages");
    body["next"] = page < 22 ? Json("/api/attendance?cursor=" + std::to_string(page + 1)) : Json(nullptr);
    return HttpResponse{200, body.dump(), {}, Millis(1)};
  };
  AuditReport r = run("2026-11-02");
  EXPECT_EQ(http.requests.size(), 22u);
  EXPECT_EQ(http.requests[1].url, "http://127.0.0.1:9/api/attendance?cursor=2");
  EXPECT_EQ(r.summary["records"], 220);
}

TEST_F(HttpSourceTest, NextLinkAndPagesTogetherStopAtTheLastPage) {
  // The simulated school system's shape: "next" is null on the last page, "pages" is given.
  http.respond = [&](const HttpRequest& req) -> Result<HttpResponse> {
    int page = page_param(req.url);
    Json body = page_json(page, 3, 10, "2026-11-02");
    body["next"] = page < 3 ? Json("/api/attendance?from=2026-10-26&to=2026-11-02&page=" + std::to_string(page + 1))
                            : Json(nullptr);
    return HttpResponse{200, body.dump(), {}, Millis(1)};
  };
  AuditReport r = run("2026-11-02");
  EXPECT_EQ(http.requests.size(), 3u);
  EXPECT_EQ(r.summary["records"], 30);
}

TEST_F(HttpSourceTest, BareArrayPagesUntilEmpty) {
  http.respond = [&](const HttpRequest& req) -> Result<HttpResponse> {
    int page = page_param(req.url);
    Json body = page <= 4 ? page_json(page, 0, 5, "2026-11-02")["records"] : Json::array();
    return HttpResponse{200, body.dump(), {}, Millis(1)};
  };
  AuditReport r = run("2026-11-02");
  EXPECT_EQ(http.requests.size(), 5u);
  EXPECT_EQ(r.summary["records"], 20);
}

TEST_F(HttpSourceTest, FailureOnALaterPageDropsTheWholeRun) {
  http.respond = [&](const HttpRequest& req) -> Result<HttpResponse> {
    int page = page_param(req.url);
    if (page == 3) return HttpResponse{502, "bad gateway", {}, Millis(1)};
    return HttpResponse{200, page_json(page, 5, 10, "2026-11-02").dump(), {}, Millis(1)};
  };
  AuditReport r = run("2026-11-02");
  EXPECT_EQ(r.summary["records"], 0);
  EXPECT_EQ(source(r)->state, "unknown");
}

TEST_F(HttpSourceTest, CaseOpensFromApiRecords) {
  http.respond = [&](const HttpRequest&) -> Result<HttpResponse> {
    Json records = Json::array();
    for (const char* d : {"2026-11-02", "2026-11-03", "2026-11-04"})
      records.push_back({{"student_id", "S9"}, {"class", "5-1"}, {"grade", "5"}, {"date", d}, {"status", "absent"}});
    return HttpResponse{200, Json{{"records", records}, {"next", nullptr}}.dump(), {}, Millis(1)};
  };
  AuditReport r = run("2026-11-04");
  ASSERT_EQ(r.case_actions.size(), 1u);
  EXPECT_EQ(r.case_actions[0].subject, "S9");
  EXPECT_EQ(r.summary["open_cases"][0]["class"], "5-1");
}

}  // namespace
}  // namespace campus::attendance
