// The one place that turns an error into OpenRouter's wire shape:
//   {"error":{"code":<int>,"message":"...","metadata":{...}}}
// with the HTTP status equal to `code`.
#pragma once

#include <boost/json/object.hpp>
#include <string>

namespace beacon::api {

struct ApiError {
    int status = 500;
    std::string message;
    boost::json::object metadata;  // optional; omitted from the body when empty

    static ApiError BadRequest(std::string message) { return {400, std::move(message), {}}; }
    static ApiError Unauthorized(std::string message) { return {401, std::move(message), {}}; }
    static ApiError Forbidden(std::string message) { return {403, std::move(message), {}}; }
    static ApiError NotFound(std::string message) { return {404, std::move(message), {}}; }
    static ApiError PayloadTooLarge(std::string message) { return {413, std::move(message), {}}; }
    static ApiError Internal(std::string message) { return {500, std::move(message), {}}; }
};

// The error object alone: {"code":..,"message":..,"metadata"?:..}.
boost::json::object ErrorObject(const ApiError& error);

// The full response body, serialized.
std::string ErrorBody(const ApiError& error);

}  // namespace beacon::api
