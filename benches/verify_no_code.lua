wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.body = '{"email":"nobody-pending@example.com","otp":"123456"}'
