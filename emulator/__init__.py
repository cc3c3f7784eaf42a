"""Local stand-in for the AWS endpoints device trust uses (CloudFormation, IAM, STS, IoT
and the IoT credentials provider), built on moto: `python -m emulator`."""

ACCOUNT_ID = "123456789012"
REGION = "us-east-1"
