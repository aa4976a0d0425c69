// GenerationCall: prepare (worker pool) -> submit -> outputs on the strand -> JSON body or SSE
// chunks. See generation.h for the lifecycle.
// Invariant: every callback catches what it could throw; engine outputs are only handled on
// the connection's strand, in the order the engine produced them.
#include "src/server/generation.h"

#include <boost/asio/post.hpp>
#include <boost/asio/write.hpp>
#include <ctime>

#include "src/server/session.h"
#include "tessera/core/logging.h"

namespace tessera::server {
namespace asio = boost::asio;
namespace beast = boost::beast;

GenerationCall::GenerationCall(std::shared_ptr<Session> session, ServerState& state, Route route,
                               http::request<http::string_body> request, engine::Engine* engine)
    : session_(std::move(session)),
      state_(state),
      route_(route),
      body_(std::move(request.body())),
      version_(request.version()),
      keep_alive_(request.keep_alive()),
      engine_(engine),
      arrival_(Clock::now()) {}

GenerationCall::~GenerationCall() { state_.release_slot(); }

void GenerationCall::start() {
  session_->watch_for_disconnect();
  asio::post(state_.workers, [self = shared_from_this()] {
    api::Prepared prepared = api::ApiError{};
    try {
      prepared = self->route_ == Route::kChatCompletions
                     ? api::prepare_chat_completion(self->body_, self->state_.model)
                     : api::prepare_completion(self->body_, self->state_.model);
    } catch (const std::exception& e) {
      prepared = make_api_error(500, std::string("request preparation failed: ") + e.what(),
                                "server_error");
    }
    asio::post(self->session_->executor(), [self, p = std::move(prepared)]() mutable {
      try {
        self->on_prepared(std::move(p));
      } catch (const std::exception& e) {
        TESSERA_LOG_ERROR("generation setup failed: {}", e.what());
        self->abort_unfinished();
      }
    });
  });
}

void GenerationCall::on_prepared(api::Prepared prepared) {
  if (auto* error = std::get_if<api::ApiError>(&prepared)) return respond_error(*error);
  if (client_gone_) return session_->finish_exchange(false);
  prepared_ = std::move(std::get<api::PreparedRequest>(prepared));
  streaming_ = prepared_->stream;
  const char* prefix = route_ == Route::kChatCompletions ? "chatcmpl" : "cmpl";
  assembler_.emplace(*prepared_, make_response_id(state_, prefix),
                     static_cast<int64_t>(std::time(nullptr)));
  submit_all();
}

void GenerationCall::submit_all() {
  const size_t n = prepared_->requests.size();
  for (size_t i = 0; i < n; ++i) {
    auto self = shared_from_this();
    auto executor = session_->executor();
    engine::OutputCallback callback = [self, executor, i](engine::RequestOutput output) {
      asio::post(executor, [self, i, out = std::move(output)]() mutable {
        try {
          self->on_output(i, std::move(out));
        } catch (const std::exception& e) {
          TESSERA_LOG_ERROR("output handling failed: {}", e.what());
        }
      });
    };
    Result<engine::RequestId> id = engine_->submit(prepared_->requests[i], std::move(callback));
    if (!id.ok()) {
      submit_error_ = api::error_from_status(id.status());
      break;
    }
    ids_.push_back(id.value());
  }
  finished_.assign(ids_.size(), false);
  first_token_seen_.assign(ids_.size(), false);
  last_token_at_.assign(ids_.size(), arrival_);
  num_unfinished_ = ids_.size();
  if (submit_error_) {
    if (ids_.empty()) return respond_error(*submit_error_);
    abort_unfinished();  // their final outputs arrive; the error is answered then
    return;
  }
  if (streaming_) {
    header_.emplace(http::status::ok, version_);
    header_->set(http::field::server, "tessera");
    header_->set(http::field::content_type, "text/event-stream; charset=utf-8");
    header_->set(http::field::cache_control, "no-cache");
    header_->set("X-Accel-Buffering", "no");
    header_->keep_alive(keep_alive_);
    header_->chunked(true);
    header_serializer_.emplace(*header_);
    last_write_at_ = Clock::now();
    pump();
    arm_keepalive();
  }
}

void GenerationCall::observe_latencies(size_t index, const engine::RequestOutput& output,
                                       Clock::time_point now) {
  size_t new_tokens = 0;
  for (const engine::CompletionDelta& delta : output.deltas) {
    new_tokens = std::max(new_tokens, delta.token_ids.size());
  }
  if (new_tokens > 0) {
    if (!first_token_seen_[index]) {
      first_token_seen_[index] = true;
      state_.metrics.observe_time_to_first_token(
          std::chrono::duration<double>(now - arrival_).count());
      new_tokens -= 1;
    }
    if (new_tokens > 0) {
      const double per_token =
          std::chrono::duration<double>(now - last_token_at_[index]).count() /
          static_cast<double>(new_tokens);
      for (size_t t = 0; t < new_tokens; ++t) state_.metrics.observe_inter_token_latency(per_token);
    }
    last_token_at_[index] = now;
  }
  if (output.finished) {
    state_.metrics.observe_e2e_request_latency(
        std::chrono::duration<double>(now - arrival_).count());
    engine::FinishReason reason = engine::FinishReason::kAbort;
    for (const engine::CompletionDelta& delta : output.deltas) {
      if (delta.finish_reason) reason = *delta.finish_reason;
    }
    if (!output.error.ok()) reason = engine::FinishReason::kError;
    state_.metrics.count_finished(reason);
  }
}

void GenerationCall::on_output(size_t index, engine::RequestOutput output) {
  if (index >= finished_.size() || finished_[index]) return;
  observe_latencies(index, output, Clock::now());
  const bool finished = output.finished;
  if (!submit_error_ && !client_gone_) {
    std::vector<std::string> events = assembler_->on_output(index, output);
    if (streaming_) {
      for (std::string& event : events) enqueue(std::move(event));
    }
  }
  if (finished) {
    finished_[index] = true;
    if (--num_unfinished_ == 0) on_all_finished();
  }
}

void GenerationCall::on_all_finished() {
  if (completed_) return;
  completed_ = true;
  if (keepalive_timer_) keepalive_timer_->cancel();
  if (client_gone_) return session_->finish_exchange(false);
  if (submit_error_) return respond_error(*submit_error_);
  std::optional<api::ApiError> error = assembler_->error();
  if (!streaming_) {
    if (error) return respond_error(*error);
    return session_->send_response(
        make_json_response(http::status::ok, assembler_->finish(), version_, keep_alive_));
  }
  if (error) enqueue("data: {\"error\":" + error->to_json() + "}\n\n");
  enqueue(assembler_->finish());
  final_queued_ = true;
  pump();
}

void GenerationCall::respond_error(const api::ApiError& error) {
  completed_ = true;
  if (client_gone_) return session_->finish_exchange(false);
  session_->send_response(make_error_response(error, version_, keep_alive_));
}

void GenerationCall::on_client_gone() {
  if (client_gone_) return;
  client_gone_ = true;
  abort_unfinished();
  // Nothing was submitted yet (still preparing) or everything is done: end here.
  if (completed_ && !writing_) session_->finish_exchange(false);
}

void GenerationCall::abort_unfinished() {
  for (size_t i = 0; i < ids_.size(); ++i) {
    if (!finished_[i]) engine_->abort(ids_[i]);
  }
}

void GenerationCall::enqueue(std::string data) {
  if (data.empty()) return;
  pending_ += data;
  pump();
}

void GenerationCall::pump() {
  if (writing_ || client_gone_ || !header_serializer_) return;
  auto self = shared_from_this();
  beast::tcp_stream& stream = session_->stream();
  auto on_written = [self](beast::error_code ec, size_t) {
    self->writing_ = false;
    if (self->session_->client_gone() && !self->client_gone_) self->on_client_gone();
    if (ec) return self->on_client_gone();
    self->session_->stream().expires_never();
    if (self->last_chunk_sent_) return self->session_->finish_exchange(self->keep_alive_);
    self->pump();
  };
  stream.expires_after(state_.config.read_timeout);  // a client that stops reading is dropped
  if (!header_sent_) {
    writing_ = true;
    header_sent_ = true;
    http::async_write_header(stream, *header_serializer_, std::move(on_written));
  } else if (!pending_.empty()) {
    writing_ = true;
    inflight_ = std::move(pending_);
    pending_.clear();
    last_write_at_ = Clock::now();
    asio::async_write(stream, http::make_chunk(asio::buffer(inflight_)), std::move(on_written));
  } else if (final_queued_ && !last_chunk_sent_) {
    writing_ = true;
    last_chunk_sent_ = true;
    asio::async_write(stream, http::make_chunk_last(), std::move(on_written));
  } else {
    stream.expires_never();
  }
}

void GenerationCall::arm_keepalive() {
  if (completed_ || client_gone_) return;
  if (!keepalive_timer_) keepalive_timer_.emplace(session_->executor());
  keepalive_timer_->expires_after(state_.config.keepalive_interval);
  keepalive_timer_->async_wait([self = shared_from_this()](beast::error_code ec) {
    if (ec || self->completed_ || self->client_gone_) return;
    if (Clock::now() - self->last_write_at_ >= self->state_.config.keepalive_interval &&
        self->pending_.empty() && !self->writing_) {
      self->enqueue(": keep-alive\n\n");
    }
    self->arm_keepalive();
  });
}

}  // namespace tessera::server
