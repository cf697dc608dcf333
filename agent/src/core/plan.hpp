// The county's three-year plan as numbers: which of its targets a school meets, from the latest
// summaries of its audits, and the share of schools the plan asks for each year. One place for
// campusctl (from retained messages or the county database) and the county collector (its daily
// rows, the monthly plan line).
#pragma once
#include <nlohmann/json.hpp>

namespace campus::plan {

using Json = nlohmann::json;

// Each target is true (met), false (not met) or null (unknown: no summary, or a figure missing).
// Unknown never counts as met.
//   fiber:      coverage 1 in every room type the school has (classroom, function room, office)
//   recording:  every recording classroom compliant (and at least one)
//   attendance: no open absence case ("dynamic zero")
//   digital_campus: all three
Json fiber_target(const Json& fiber_summary);
Json recording_target(const Json& recording_summary);
Json attendance_target(const Json& open_cases);
Json digital_campus(const Json& fiber, const Json& recording, const Json& attendance);

// The share of schools the plan asks to be a digital campus by the end of `year`:
// 20% in 2023, 60% in 2024, 100% from 2025.
double plan_share(int year);

}  // namespace campus::plan
