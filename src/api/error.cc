#include "api/error.h"

#include <boost/json/serialize.hpp>

namespace beacon::api {

boost::json::object ErrorObject(const ApiError& error) {
    boost::json::object inner;
    inner["code"] = error.status;
    inner["message"] = error.message;
    if (!error.metadata.empty()) inner["metadata"] = error.metadata;
    return inner;
}

std::string ErrorBody(const ApiError& error) {
    boost::json::object body;
    body["error"] = ErrorObject(error);
    return boost::json::serialize(body);
}

}  // namespace beacon::api
